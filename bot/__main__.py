import sys

from bot.cli import main

if __name__ == "__main__":  # worker processes (spawned by parallel index builds) import this too
    sys.exit(main())
