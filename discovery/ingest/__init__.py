"""Stage 1: the trade-history CSV, streamed in chunks into a bounded TradeBook."""
