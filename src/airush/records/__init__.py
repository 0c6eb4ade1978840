"""Views of recorded runs: leaderboard, compare, reproduce, registry (reading what `airush.tracking` wrote)."""
