"""Waking the live streams of an in-app inbox when it changes (within this process)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class Subscription:
    recipient: str
    loop: asyncio.AbstractEventLoop
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class InboxHub:
    """Streams wait on an asyncio.Event; the dispatcher's threads set it through the loop."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()

    def subscribe(self, recipient: str) -> Subscription:
        subscription = Subscription(recipient, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(recipient, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            group = self._subscribers.get(subscription.recipient)
            if group is not None:
                group.discard(subscription)
                if not group:
                    del self._subscribers[subscription.recipient]

    def publish(self, recipient: str) -> None:
        with self._lock:
            group = list(self._subscribers.get(recipient, ()))
        for subscription in group:
            if not subscription.loop.is_closed():
                subscription.loop.call_soon_threadsafe(subscription.changed.set)

    def count(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._subscribers.values())
