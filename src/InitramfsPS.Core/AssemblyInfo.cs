using System.Runtime.CompilerServices;

// The cmdlets (until they call only the public API), the fuzz harnesses and the unit tests
// reach the engine's internals.
[assembly: InternalsVisibleTo("InitramfsPS")]
[assembly: InternalsVisibleTo("InitramfsPS.Fuzz")]
[assembly: InternalsVisibleTo("InitramfsPS.Core.Tests")]
