"""What both tasks' data sources share: reading a user's CSV/Parquet files, and data fingerprints."""
