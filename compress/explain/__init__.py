"""Attribution engines and their fidelity metrics (the `explain` stage's machinery).

- `occlusion`: a sliding window filled with a constant, run in ONNX Runtime, so that what ships
  (int8 included) is what is explained; feature ablation for tables.
- `gradients`: Integrated Gradients and gradient x input on PyTorch checkpoints, for comparison.
- `randomize`: the teacher's architecture with weights re-initialized from the top layer down
  (the cascading randomization of Adebayo et al., "Sanity Checks for Saliency Maps", 2018).
- `fidelity`: per-sample Spearman rank correlation, top-k overlap and top-region agreement of two
  models' maps, with percentile-bootstrap confidence intervals.
"""
