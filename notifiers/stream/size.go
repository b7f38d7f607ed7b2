package stream

import "github.com/riposte-sec/riposte/internal/actions"

// Size is a number of bytes in a config file: 1048576, 512KiB, 50MB, 1GiB.
type Size = actions.ByteSize
