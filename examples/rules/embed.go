package rules

import "embed"

// FS holds the default rules files.
//
//go:embed *.yaml
var FS embed.FS
