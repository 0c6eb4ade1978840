"""Abuse detection: is a session of keyboard and mouse events a bot/macro or an intruder?"""
