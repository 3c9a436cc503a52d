"""``python -m tests.docs._probe OUTPUT``: the emulator whose output is OUTPUT answers on its URL.

It prints ``FollowAnalytics emulator listening on URL`` (and, with ``--tls``, the CA file before it):
an unauthenticated request must get the API's 401, over https checked against that CA.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import requests


def main(output: str) -> None:
    text = Path(output).read_text()
    url = re.search(r"listening on (\S+)", text)
    ca = re.search(r"CA certificate: (\S+)", text)
    assert url, text
    answer = requests.get(f"{url[1]}/api/data_exporters", verify=ca[1] if ca else True, timeout=10)
    assert answer.status_code == 401, (answer.status_code, answer.text)
    print(f"(probe: {url[1]} answered 401 without a token)")


if __name__ == "__main__":
    main(sys.argv[1])
