using System;

namespace InitramfsPS.Registry
{
    /// <summary>Settings of a <see cref="RegistryClient"/>.</summary>
    internal sealed class RegistryOptions
    {
        /// <summary>Credentials given explicitly; when null the auth files are consulted.</summary>
        public RegistryCredential? Credential { get; init; }

        /// <summary>Allow plain HTTP to a registry that is not on a loopback address.</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>Timeouts, the minimum transfer rate and the number of attempts.</summary>
        public RegistryLimits Limits { get; init; } = RegistryLimits.Default;

        /// <summary>The first back-off delay; it doubles on each retry.</summary>
        public TimeSpan FirstDelay { get; init; } = TimeSpan.FromMilliseconds(500);

        /// <summary>
        /// The client pushes: its token asks for <c>pull,push</c> on the repository, and
        /// <c>pull</c> on <see cref="MountFrom"/> when that is another repository.
        /// </summary>
        public bool Push { get; init; }

        /// <summary>A repository of the same registry that blobs may be mounted from (the source image's).</summary>
        public string? MountFrom { get; init; }

        /// <summary>Where the client reports what it does (never secrets).</summary>
        public Action<string>? Verbose { get; init; }
    }
}
