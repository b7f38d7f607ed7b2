// Package pagerduty is riposte's pagerduty integration.
package pagerduty
