"""Stateful loopback fakes of GitHub, Microsoft Graph and Azure OpenAI that the real SDKs reach by base URL.

They are the world ``make simulate``, ``make arena`` and ``make bench`` run in, and what the tests run against.
Each speaks the platform's wire format and error shapes and refuses requests it does not model.
"""
