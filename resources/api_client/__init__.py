"""What every commercial clip API shares: HTTP with retries, the paid job's life in the ledger, polling,
downloading, and turning the provider's video into our loop.

A provider module only says how to talk to its API (authentication, the create request, how to read a task,
how its refusals look). `ApiClipProvider.render_clip` (paid_jobs.py) runs the rest:

1. open the ledger job: the list price is reserved on the daily budget and the request's scopes, or an
   earlier run's job for the same idempotency key is found;
2. a succeeded job downloads its output again without paying; a submitted one resumes polling; otherwise the
   create request is sent once, and the task id is recorded before the first poll;
3. poll until the task ends or the poll deadline passes; on success record the charge, then download
   (asking the task for a fresh URL when the old one expired);
4. check that the video decodes and is long enough, fit it to the requested size, make it loop, encode it.

Create requests are repeated only when the answer proves nothing was made (no connection, 429). Ambiguous
answers (5xx, read timeout, dropped connection, a run killed mid-request) are never re-sent blindly: a
provider that can look tasks up by our own id (Kling, D-ID) is asked; otherwise the job is left `unconfirmed`
(its budget still reserved) with SubmissionUncertain, for an operator to answer with `skuvid jobs resolve`.
`resubmit_unconfirmed` (off by default) accepts the risk of a second provider charge instead. The ledger
charges a job once either way.

Modules by concern: errors (what can go wrong, as exceptions that name the request), http (the client with
retries and bounded downloads), tasks (a provider task and the job's identity), prices (list prices and the
cost record), outputs (the provider's video turned into our loop), paid_jobs (the job's life in the ledger).
"""
