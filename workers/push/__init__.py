"""Push: rule evaluation, unread notification counts, ``/notifications``, pushers.

Spec: client-server API module "Push Notifications" and the Push Gateway API.

- ``conditions`` and ``evaluator``: pure. Which actions a user's ruleset gives an event.
- ``context``: what the pure evaluator needs from the room (member count, the user's
  display name, the sender's power and the ``notifications`` levels), read from D1.
- ``unread``: evaluation of new events per user, cached in ``event_push_actions`` (each
  event once per user), and the ``unread_notifications`` counts of ``/sync``.
- ``notifications``: ``GET /notifications``. ``pushers``: ``GET /pushers``, ``POST
  /pushers/set``. ``gateway``: the HTTP client for ``/_matrix/push/v1/notify``.
  ``dispatcher``: wakes the pusher actors (``durable/pusher.py``) when rooms change.
"""
