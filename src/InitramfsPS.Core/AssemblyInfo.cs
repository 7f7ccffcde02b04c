using System.Runtime.CompilerServices;

// The fuzz harnesses and the unit tests
// reach the engine's internals.
[assembly: InternalsVisibleTo("InitramfsPS.Fuzz")]
[assembly: InternalsVisibleTo("InitramfsPS.Core.Tests")]
