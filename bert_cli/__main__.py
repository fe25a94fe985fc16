"""``python -m bert_cli`` runs the ``bert`` command."""

from .cli.app import main

if __name__ == "__main__":
    main()
