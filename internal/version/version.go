// Package version identifies this build of espnode, on the command line and on the wire.
package version

import "runtime/debug"

// Version is set at link time (-ldflags "-X github.com/espnode/espnode/internal/version.Version=v1.2.3");
// otherwise it is read from the build information.
var Version = ""

// ImplementationClassUID identifies espnode's implementation in association negotiation and file
// meta information (PS3.7 D.3.3.2). It is a UUID-derived UID (PS3.5 B.2) and never changes.
const ImplementationClassUID = "2.25.246731229084766186692169010574884564696"

// String returns the version, "devel" for an unversioned build.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// ImplementationVersionName is at most 16 characters (PS3.7 D.3.3.2.2).
func ImplementationVersionName() string {
	name := "ESPNODE_" + String()
	if len(name) > 16 {
		name = name[:16]
	}
	return name
}
