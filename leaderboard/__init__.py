"""Everything about many runs: ranking, rendering, exports. May import `validator`, never the reverse."""
