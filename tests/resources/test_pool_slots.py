import threading
import time

import dagster as dg

from resources.pool_slots import pool_slot


def test_slots_bound_concurrency_across_holders_and_unlimited_pools_pass():
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots("gpu", 1)
        active, peak, lock = [0], [0], threading.Lock()

        def render(index: int) -> None:
            with pool_slot(instance, "gpu", f"run-{index % 2}", f"clip[{index}]", lambda _: None, poll_s=0.02):
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.1)
                with lock:
                    active[0] -= 1

        threads = [threading.Thread(target=render, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert peak[0] == 1
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
        messages = []
        with pool_slot(instance, "unconfigured", "run-x", "clip[x]", messages.append):
            pass
        assert "no limit" in messages[0]
        with pool_slot(instance, None, "run-x", "clip[cpu]", messages.append):
            pass
