using System;
using InitramfsPS.Errors;

namespace InitramfsPS.Images
{
    /// <summary>An image platform, <c>os/architecture[/variant]</c>, normalised as containerd does.</summary>
    public sealed record Platform(string Os, string Architecture, string? Variant)
    {
        /// <summary>Platforms offered by tab completion.</summary>
        public static readonly string[] Common =
        {
            "linux/amd64", "linux/arm64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6", "linux/386",
            "linux/ppc64le", "linux/s390x", "linux/riscv64",
        };

        /// <summary>linux/amd64, the platform most microVM fleets run.</summary>
        public static Platform Default { get; } = new("linux", "amd64", null);

        /// <summary>Linux on this machine's architecture: what an image pulled here is most likely meant to run on.</summary>
        public static Platform Host { get; } = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
        {
            System.Runtime.InteropServices.Architecture.Arm64 => new("linux", "arm64", null),
            System.Runtime.InteropServices.Architecture.Arm => new("linux", "arm", "v7"),
            System.Runtime.InteropServices.Architecture.X86 => new("linux", "386", null),
            System.Runtime.InteropServices.Architecture.S390x => new("linux", "s390x", null),
            System.Runtime.InteropServices.Architecture.Ppc64le => new("linux", "ppc64le", null),
            _ => Default,
        };

        /// <summary>Parses <c>os/arch[/variant]</c>, mapping aliases (x86_64, aarch64).</summary>
        public static Platform Parse(string text)
        {
            string[] parts = (text ?? string.Empty).Trim().ToLowerInvariant().Split('/');
            if (parts.Length is < 2 or > 3 || Array.Exists(parts, p => p.Length == 0))
            {
                throw new InitramfsException("InvalidPlatform", FailureKind.InvalidArgument,
                    $"'{text}' is not a platform; write os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8.", text);
            }
            return Normalize(parts[0], parts[1], parts.Length == 3 ? parts[2] : null);
        }

        /// <summary>Normalises architecture aliases and default variants.</summary>
        public static Platform Normalize(string os, string architecture, string? variant)
        {
            string arch = architecture switch
            {
                "x86_64" or "x86-64" => "amd64",
                "aarch64" => "arm64",
                "i386" or "i686" => "386",
                "armhf" => "arm",
                _ => architecture,
            };
            string? v = string.IsNullOrEmpty(variant) ? null : variant;
            if (arch == "arm64" && v == "v8")
            {
                v = null;
            }
            if (arch == "arm" && v is null && architecture == "armhf")
            {
                v = "v7";
            }
            return new Platform(os, arch, v);
        }

        /// <summary>Whether an image of platform <paramref name="candidate"/> runs where this platform is wanted.</summary>
        public bool Matches(Platform candidate) =>
            string.Equals(Os, candidate.Os, StringComparison.Ordinal)
            && string.Equals(Architecture, candidate.Architecture, StringComparison.Ordinal)
            && (Variant is null || string.Equals(Variant, candidate.Variant, StringComparison.Ordinal));

        /// <inheritdoc/>
        public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
    }
}
