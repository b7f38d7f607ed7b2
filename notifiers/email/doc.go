// Package email is riposte's email integration.
package email
