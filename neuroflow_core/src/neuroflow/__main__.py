"""``python -m neuroflow`` runs the command-line tool."""

from neuroflow.cli import main

if __name__ == "__main__":
    main()
