"""Music recommendation: play logs + track metadata -> top-K tracks per user."""
