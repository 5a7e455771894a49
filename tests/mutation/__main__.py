"""``python -m tests.mutation MODULE...``: see tests/mutation/campaign.py."""

from tests.mutation.campaign import main

raise SystemExit(main())
