"""Shared harness for the quicstash integration and fault tests (Python 3 stdlib only).

Environment:
  QS_BIN       directory holding quicstashd and quicstash-send (ctest sets it;
               default: <repo>/build/bin)
  QS_SANITIZE  "1" when the binaries are built with ASan+UBSan: loads are scaled
               down with scale(), every assertion stays.
  QS_TEST_HOOKS "0" when the binaries lack the test-only hooks (ctest sets it;
               default "1"): the tests that need one skip (need_test_hooks).
  QS_KEEP      "1" keeps the temporary directories (for debugging).
  QS_CASE      runs only the named case(s) of a test (see runner.py; also --case, --list).

Every wait is bounded; every process started here is killed at exit.
A test calls qslib.main(fn) or qslib.main(fn, cases=[...]): fn runs, the verdict line is
"PASS name: ..." or "FAIL name: ...", and the exit status is 0, 1 (fail), 2 (bad --case) or
77 (skip, see Skip).

One module per job; this file only re-exports them, so `import qslib as q; q.Server` works:
  base      settings from the environment, Skip/TestFailure, log, check, scale, tmo
  cleanup   cleanup at exit, the child's death signal, temporary directories, need_binaries
  net       free ports, NetNs (a network namespace), LossyRelay (a lossy UDP relay)
  events    numbered test events, protocol frames, ECS fields, server fields
  receiver  Receiver, the TCP/TLS stand-in for Logstash
  tls       make_pki, make_client_pki (certtool), server_tls_context
  server    Server (quicstashd in its own directory), KeptSocket (systemd socket passing)
  client    send, AsyncSend, Feeder, ack logs, verify_delivery, bench_run (quicstash-bench)
  faults    Load, mid-stream faults, kill -9 of a child
  disk      spool files, tmpfs mounts
  metrics   scrapes of --metrics-addr, promtool, Prometheus (a real one on a loopback port),
            counted_run (a bench run's metric increases)
  runner    main: the verdict, the exit status and the case selector
"""

from .base import (  # noqa: F401
    REPO, QS_BIN, SANITIZE, TEST_HOOKS, KEEP, QUICSTASHD, SEND, SLOW, SANITIZER_REPORT, SKIP_CODE,
    Skip, TestFailure, scale, tmo, log, check)
from .cleanup import at_cleanup, _pdeathsig, mkdtemp, need_binaries, need_test_hooks  # noqa: F401
from .net import free_port, NetNs, LossyRelay, run_in_netns  # noqa: F401
from .events import (  # noqa: F401
    gen_event, gen_events, frame, stream_header, write_lines, field, has_field,
    SERVER_FIELDS, EVENT_ID_RE, RFC3339_RE, parse_rfc3339, client_view)
from .receiver import Receiver  # noqa: F401
from .tls import make_client_pki, make_pki, server_tls_context  # noqa: F401
from .server import _read_cmdline, Server, KeptSocket  # noqa: F401
from .client import (  # noqa: F401
    send, SUMMARY_RE, send_acked, arrived, summary, AsyncSend, Feeder, read_ack_log, verify_delivery,
    bench_run)
from .faults import Load, paced, mid_stream, finish_client, finish_after_kills, fault_kill_child_case  # noqa: F401
from .disk import spool_files, spool_bytes, mount_tmpfs, remount_tmpfs  # noqa: F401
from .metrics import (  # noqa: F401
    metrics_server_args, http_get, scrape, wait_metric, wait_http, promtool_check, Prometheus, counted_run)
from .runner import main  # noqa: F401
