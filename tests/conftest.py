import os

# Tests never reach a model hub: a missing local weight must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
