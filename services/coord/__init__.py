"""Limits shared across processes and machines: pacing, daily quotas, "open until" flags and
single-flight, each behind one small interface with three backends (this process; every process
of one data root through `state/coord.sqlite`; every process using one Redis, with the local
backends behind it). `backends` picks them; nothing here knows about services or discovery.
"""
