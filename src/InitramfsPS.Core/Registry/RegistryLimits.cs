using System;
using System.Globalization;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// How long the registry client waits, and how often it tries, before it declares a registry
    /// unavailable. The defaults are meant never to fail a real pull of a large layer over a slow
    /// link, and always to end a pull from a registry that has stopped sending:
    /// <list type="bullet">
    /// <item>connect, 30 s: a TCP and TLS handshake takes milliseconds to a second or two even
    /// across continents; 30 s is also what Docker and .NET use.</item>
    /// <item>first byte, 60 s: from sending a request to the status line and headers of the
    /// answer (connecting included). Registries answer in well under a second, but a blob store
    /// behind a redirect may first have to fetch a cold object; a minute leaves room for that.</item>
    /// <item>stall: a body must bring at least 1 KiB/s averaged over each 30 s window (30 KiB
    /// per 30 s). That fails only a link slower than an old 9600 baud modem, while a registry
    /// that sends nothing, or a byte a second, is noticed within 30 s. It is a window, not a
    /// per-read timeout, so TCP's own pauses (a lost packet, a congested Wi-Fi) pass.</item>
    /// <item>attempts, 6: each failure above, a dropped connection, 429 and 5xx are retried with
    /// back-off (0.5 s doubling); a blob resumes where it stopped.</item>
    /// </list>
    /// Each can be changed with an environment variable (seconds may have decimals; 0 turns a
    /// timeout off).
    /// </summary>
    internal sealed record RegistryLimits
    {
        /// <summary>Seconds to establish a connection (TCP and TLS).</summary>
        public const string ConnectTimeoutVariable = "INITRAMFSPS_CONNECT_TIMEOUT";

        /// <summary>Seconds from a request to the first byte of its answer.</summary>
        public const string FirstByteTimeoutVariable = "INITRAMFSPS_FIRST_BYTE_TIMEOUT";

        /// <summary>Seconds of the window over which a body must keep the minimum rate.</summary>
        public const string StallTimeoutVariable = "INITRAMFSPS_STALL_TIMEOUT";

        /// <summary>Bytes per second a body must average over each stall window.</summary>
        public const string MinTransferRateVariable = "INITRAMFSPS_MIN_TRANSFER_RATE";

        /// <summary>How many times a request is tried.</summary>
        public const string AttemptsVariable = "INITRAMFSPS_REGISTRY_ATTEMPTS";

        /// <summary>The defaults.</summary>
        public static RegistryLimits Default { get; } = new();

        /// <summary>Time to establish a connection; <see cref="TimeSpan.Zero"/> waits forever.</summary>
        public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

        /// <summary>Time from sending a request to the answer's headers; <see cref="TimeSpan.Zero"/> waits forever.</summary>
        public TimeSpan FirstByteTimeout { get; init; } = TimeSpan.FromSeconds(60);

        /// <summary>The window over which <see cref="MinBytesPerSecond"/> is averaged; <see cref="TimeSpan.Zero"/> turns the check off.</summary>
        public TimeSpan StallWindow { get; init; } = TimeSpan.FromSeconds(30);

        /// <summary>The slowest body accepted, in bytes per second; 0 turns the check off.</summary>
        public long MinBytesPerSecond { get; init; } = 1024;

        /// <summary>How many times a request is tried before the registry is declared unavailable.</summary>
        public int Attempts { get; init; } = 6;

        /// <summary>The defaults, with what the INITRAMFSPS_* environment variables set.</summary>
        public static RegistryLimits FromEnvironment(Func<string, string?>? getVariable = null)
        {
            getVariable ??= Environment.GetEnvironmentVariable;
            var limits = Default;
            if (Seconds(getVariable, ConnectTimeoutVariable) is { } connect)
            {
                limits = limits with { ConnectTimeout = connect };
            }
            if (Seconds(getVariable, FirstByteTimeoutVariable) is { } firstByte)
            {
                limits = limits with { FirstByteTimeout = firstByte };
            }
            if (Seconds(getVariable, StallTimeoutVariable) is { } stall)
            {
                limits = limits with { StallWindow = stall };
            }
            if (Integer(getVariable, MinTransferRateVariable, 0, 1L << 40, "a number of bytes per second (0 turns the check off)") is { } rate)
            {
                limits = limits with { MinBytesPerSecond = rate };
            }
            if (Integer(getVariable, AttemptsVariable, 1, 100, "a number of attempts from 1 to 100") is { } attempts)
            {
                limits = limits with { Attempts = (int)attempts };
            }
            return limits;
        }

        /// <summary>"2 s", "0.5 s".</summary>
        public static string Format(TimeSpan span) => span.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";

        private static TimeSpan? Seconds(Func<string, string?> getVariable, string name)
        {
            string? text = getVariable(name);
            if (string.IsNullOrWhiteSpace(text))
            {
                return null;
            }
            if (!double.TryParse(text.Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds) || seconds > 86_400)
            {
                throw Invalid(name, text, "a number of seconds from 0 to 86400 (0 turns the timeout off)");
            }
            return TimeSpan.FromSeconds(seconds);
        }

        private static long? Integer(Func<string, string?> getVariable, string name, long min, long max, string what)
        {
            string? text = getVariable(name);
            if (string.IsNullOrWhiteSpace(text))
            {
                return null;
            }
            if (!long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
            {
                throw Invalid(name, text, what);
            }
            return value;
        }

        private static InitramfsException Invalid(string name, string value, string what) =>
            new("RegistrySettingInvalid", FailureKind.InvalidArgument,
                $"The environment variable {name} is '{RootfsPath.Printable(value)}'; it must be {what}.", name);
    }
}
