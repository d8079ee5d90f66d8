"""The top floor: the `clickfan` command, the demo and the dashboard.

These import the rest of clickfan (lazily, when a command runs); nothing imports them.
"""
