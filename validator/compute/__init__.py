"""Compute accounting: recount FLOPs and samples; the sandbox that runs submitted code."""
