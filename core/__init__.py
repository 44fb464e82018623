"""The bottom layer: errors, money, the clock and the channel-neutral envelope types.

Every other package may import ``core``; ``core`` imports nothing of ours.
"""
