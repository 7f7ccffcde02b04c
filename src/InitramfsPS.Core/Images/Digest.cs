using System;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using InitramfsPS.Errors;
using InitramfsPS.IO;

namespace InitramfsPS.Images
{
    /// <summary>
    /// A content digest (<c>sha256:hex</c>). Parsing is strict because digests become file names
    /// in layouts and the cache: a lax parser would let a hostile manifest name <c>../../x</c>.
    /// </summary>
    public readonly record struct Digest
    {
        private static readonly Regex Sha256Hex = new(@"^[a-f0-9]{64}\z", RegexOptions.CultureInvariant);
        private static readonly Regex Sha512Hex = new(@"^[a-f0-9]{128}\z", RegexOptions.CultureInvariant);

        private Digest(string algorithm, string hex)
        {
            Algorithm = algorithm;
            Hex = hex;
        }

        /// <summary>The algorithm, <c>sha256</c> or <c>sha512</c>.</summary>
        public string Algorithm { get; }

        /// <summary>Lower-case hex of the hash.</summary>
        public string Hex { get; }

        /// <summary>
        /// Parses <c>algorithm:hex</c>, refusing anything else. With one parameter PowerShell finds
        /// it, so a digest compares equal to its text (<c>$a.Digest -eq 'sha256:…'</c>).
        /// </summary>
        public static Digest Parse(string? text) => Parse(text, "digest");

        /// <summary>Parses <c>algorithm:hex</c>, refusing anything else; <paramref name="what"/> names the value in the error.</summary>
        public static Digest Parse(string? text, string what)
        {
            if (TryParse(text, out var digest))
            {
                return digest;
            }
            throw new InitramfsException("InvalidDigest", FailureKind.InvalidData,
                $"The {what} '{Printable.Of(text)}' is not a valid sha256 or sha512 digest.", text);
        }

        /// <summary>Parses <c>algorithm:hex</c>; false for anything else.</summary>
        public static bool TryParse(string? text, out Digest digest)
        {
            digest = default;
            if (string.IsNullOrEmpty(text))
            {
                return false;
            }
            int colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                return false;
            }
            string algorithm = text[..colon];
            string hex = text[(colon + 1)..];
            bool ok = algorithm switch
            {
                "sha256" => Sha256Hex.IsMatch(hex),
                "sha512" => Sha512Hex.IsMatch(hex),
                _ => false,
            };
            if (ok)
            {
                digest = new Digest(algorithm, hex);
            }
            return ok;
        }

        /// <summary>A sha256 digest from a finished hash.</summary>
        public static Digest FromSha256(byte[] hash) => new("sha256", Convert.ToHexString(hash).ToLowerInvariant());

        /// <summary>Computes the digest of bytes with the given algorithm.</summary>
        public static Digest Compute(string algorithm, ReadOnlySpan<byte> data)
        {
            using var hash = CreateHash(algorithm);
            hash.AppendData(data);
            return new Digest(algorithm, Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant());
        }

        /// <summary>An incremental hash of this digest's algorithm.</summary>
        public IncrementalHash CreateHash() => CreateHash(Algorithm);

        /// <summary>Whether a finished hash equals this digest.</summary>
        public bool Matches(byte[] hash) => string.Equals(Convert.ToHexString(hash), Hex, StringComparison.OrdinalIgnoreCase);

        /// <summary>The first 12 hex digits, as container tools print them.</summary>
        public string ShortHex => Hex.Length >= 12 ? Hex[..12] : Hex;

        private static IncrementalHash CreateHash(string algorithm) => algorithm switch
        {
            "sha256" => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
            "sha512" => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
            _ => throw new InitramfsException("InvalidDigest", FailureKind.NotImplemented, $"Digest algorithm '{algorithm}' is not supported."),
        };

        /// <inheritdoc/>
        public override string ToString() => Algorithm is null ? string.Empty : $"{Algorithm}:{Hex}";
    }
}
