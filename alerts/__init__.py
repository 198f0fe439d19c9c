"""SMS alerts: send, track delivery, read replies, escalate on silence, remind about capacity.

This package knows nothing of referrals. The referral package calls
:func:`alerts.escalation.open_alert` / :func:`~alerts.escalation.close_alert` and
:func:`alerts.outbox.queue_sms`, schedules its own :mod:`alerts.timers`, and registers the
handler that receives parsed replies (:func:`alerts.inbound.register_reply_handler`). The worker
process runs :func:`alerts.timers.tick` (see :mod:`alerts.worker`); the web app registers the
:data:`alerts.webhooks.webhooks` blueprint.
"""
