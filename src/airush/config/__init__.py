"""The config side: what may be chosen, the typed checks, what makes two configs the same, `--help`."""
