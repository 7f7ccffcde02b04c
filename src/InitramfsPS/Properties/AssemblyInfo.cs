using System.Runtime.CompilerServices;

// The fuzz harness (tests/Fuzz) drives the manifest and index parsers directly.
[assembly: InternalsVisibleTo("InitramfsPS.Fuzz")]
