// Package pagerduty is riposte's PagerDuty integration: pagerduty.trigger
// and pagerduty.resolve over the Events API v2, with go-pagerduty's client
// pointed at the configured endpoint (WithV2EventsAPIEndpoint).
//
// The dedup_key is the riposte incident id, so a retried trigger updates the
// same PagerDuty alert and resolve closes it. The severity comes from the
// alert's priority unless the playbook sets one; the summary is cut to 1024
// characters; the source is hostname/container; custom_details carry the
// rule, output, output fields and the steps riposte took. A throttled
// update (actions.Request.Fold) is a trigger of the same dedup_key whose
// summary starts with the count ("[+37 more in 5 min] ") and whose
// custom_details carry riposte_update and riposte_alerts_in_update.
//
// 429, 5xx and network failures are retryable (Retry-After kept when sent);
// 400 and other 4xx are permanent. Nothing sleeps inside Run. The routing
// key never appears in an error or a log line.
//
// A *PagerDuty is safe for concurrent use and holds nothing to close; the
// caller owns Deps.HTTPClient.
package pagerduty
