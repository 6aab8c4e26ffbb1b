"""GitHub: webhook verification and envelopes, the githubkit client factory, the write pacer and read tools.

githubkit is imported only here. Nothing here imports another platform package.
"""
