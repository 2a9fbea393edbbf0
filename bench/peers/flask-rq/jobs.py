"""The job the RQ peer queues and its workers run: nothing, so the queue's own cost is measured."""


def handle(kind, sid, status):
    return None
