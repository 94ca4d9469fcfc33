"""`python -m compress`: the same command line as the `compress` entry point."""

from compress.cli import main

if __name__ == "__main__":
    main()
