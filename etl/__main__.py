"""Allow ``python -m etl``."""

from etl.cli.app import console_main

if __name__ == "__main__":
    console_main()
