"""swr-etl: mirror Huawei Cloud SWR's official container image list into SQLite."""

__version__ = "0.1.0"
