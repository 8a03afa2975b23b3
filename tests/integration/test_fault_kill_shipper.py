#!/usr/bin/env python3
"""Fault suite (issue 3): kill -9 of the shipper mid-stream under load. Every acknowledged event
reaches the receiver (zero loss); the duplicate count is printed."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q

if __name__ == "__main__":
    q.main(lambda: q.fault_kill_child_case("shipper"))
