"""Training engines: the loop, batches, devices, distributed (DDP), distillation loss, fake
quantization. Stages call these; nothing here imports a stage."""
