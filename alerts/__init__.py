"""SMS alerts: send, track delivery, read replies, escalate on silence, remind about capacity.

This package knows nothing of referrals. Layers, bottom up: models, transports, messages and
replies; timers and the outbox; recipients; escalation and capacity; inbound and the worker.
The referral package calls :func:`alerts.escalation.open_alert` /
:func:`~alerts.escalation.close_alert` and :func:`alerts.outbox.queue_sms` and schedules its own
:mod:`alerts.timers`; what runs a timer or takes a reply is an explicit table
(:class:`alerts.handlers.Handlers`) the composition root builds and hands to
:func:`alerts.worker.tick` and :func:`alerts.inbound.handle_inbound`.
"""
