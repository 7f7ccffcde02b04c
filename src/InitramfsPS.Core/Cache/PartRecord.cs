using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// The key record of a compressed part: the file <c>parts/&lt;name&gt;</c> of the cache that maps
    /// a part's key (<see cref="PartKey"/>) to the blob holding its compressed bytes. The name is the
    /// hex of the sha256 of the key's text, so a lookup is one open and no listing.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Eight lines of printable ASCII, each a word and its value, in this order:
    /// </para>
    /// <code>
    /// initramfsps-part 2
    /// codec zstd
    /// level 19
    /// compressor ZstdSharp 0.8.8+…
    /// uncompressed sha256:&lt;hex&gt;
    /// uncompressed-length 12345678
    /// blob sha256:&lt;hex&gt; 4567890
    /// check blake3:&lt;hex&gt;
    /// </code>
    /// <para>
    /// The first five lines are the key's text, the rest what it maps to. Text, not JSON: a record is
    /// read whole (at most <see cref="MaxSize"/> bytes) on every lookup and parsed by a strict
    /// line-by-line reader that takes only the one spelling <see cref="Text"/> writes; anything else is
    /// garbage, removed like a corrupt blob. The key is stored whole, not only hashed into the name,
    /// so a record under the wrong name (copied, renamed) is garbage too rather than a wrong hit.
    /// The uncompressed length is for the listing only (Get-OciCache): the sha256 already fixes it.
    /// </para>
    /// <para>
    /// What a record says of its blob is checked at use: the blob's bytes against the BLAKE3 digest
    /// of the bytes the writer wrote (the <c>check</c> line) and the length. BLAKE3, as the layers'
    /// block digests (RootFilesystem/BlockDigests.cs), because a rebuild reads every kept part: on
    /// Debian minbase 52 MB, whose sha256 took 35 ms of CPU, BLAKE3 about a tenth. Only when the
    /// check fails is the sha256 computed, to tell a damaged blob (removed) from a damaged record.
    /// That the blob really is the key's bytes compressed is trusted, as a tag record is trusted to
    /// name its manifest: the record is written only after the blob was committed.
    /// </para>
    /// </remarks>
    internal sealed class PartRecord
    {
        /// <summary>The most bytes a record may have: far more than one needs (about 400).</summary>
        public const int MaxSize = 1024;

        /// <summary>The most characters of a compressor identity.</summary>
        public const int MaxCompressorLength = 200;

        private const string Magic = "initramfsps-part 2";

        /// <summary>The key this record is for.</summary>
        public required PartKey Key { get; init; }

        /// <summary>The blob of the compressed bytes.</summary>
        public required Digest Blob { get; init; }

        /// <summary>Bytes of the blob.</summary>
        public required long Length { get; init; }

        /// <summary>The BLAKE3 digest (32 bytes) of the blob's bytes, as they were written.</summary>
        public required byte[] Check { get; init; }

        /// <summary>The file name of the record of <paramref name="key"/>: the hex of the sha256 of its text.</summary>
        public static string NameOf(in PartKey key) =>
            Convert.ToHexString(SHA256.HashData(Encoding.ASCII.GetBytes(KeyText(key)))).ToLowerInvariant();

        /// <summary>Whether <paramref name="name"/> could be a record's file name (64 lower-case hex digits).</summary>
        public static bool IsName(string name) => name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

        /// <summary>The key's part of a record: what its name hashes.</summary>
        public static string KeyText(in PartKey key) => string.Create(CultureInfo.InvariantCulture,
            $"{Magic}\ncodec {key.Codec}\nlevel {key.Level}\ncompressor {key.Compressor}\nuncompressed sha256:{Convert.ToHexString(key.UncompressedSha256).ToLowerInvariant()}\n");

        /// <summary>The whole record, as written.</summary>
        public string Text() => KeyText(Key) + string.Create(CultureInfo.InvariantCulture,
            $"uncompressed-length {(Key.UncompressedLength is { } n ? n.ToString(CultureInfo.InvariantCulture) : "-")}\nblob {Blob} {Length}\ncheck blake3:{Convert.ToHexString(Check).ToLowerInvariant()}\n");

        /// <summary>What the listing says of the part: codec, level and, when recorded, its uncompressed size.</summary>
        public string Describe() => string.Create(CultureInfo.InvariantCulture,
            $"compressed part, {Key.Codec} level {Key.Level}{(Key.UncompressedLength is { } n ? $", {Units.Bytes(n)} uncompressed" : string.Empty)}");

        /// <summary>
        /// Why <paramref name="key"/> cannot be a part's key (null when it can): a codec other than
        /// zstd or gzip, a hash that is not 32 bytes, a compressor identity that is empty, too long
        /// or not printable ASCII (it is a line of the record).
        /// </summary>
        public static string? Problem(in PartKey key)
        {
            if (key.Codec is not ("zstd" or "gzip"))
            {
                return $"The codec of a compressed part is zstd or gzip, not '{Printable.Of(key.Codec)}'.";
            }
            if (key.UncompressedSha256 is not { Length: 32 })
            {
                return "The key of a compressed part needs the 32-byte sha256 of its uncompressed bytes.";
            }
            if (string.IsNullOrEmpty(key.Compressor) || key.Compressor.Length > MaxCompressorLength || !key.Compressor.All(c => c is >= ' ' and <= '~'))
            {
                return $"The compressor identity '{Printable.Of(key.Compressor)}' is not 1 to {MaxCompressorLength} printable ASCII characters.";
            }
            if (key.UncompressedLength < 0)
            {
                return "The uncompressed length of a part cannot be negative.";
            }
            return null;
        }

        /// <summary>
        /// Parses a record written by <see cref="Text"/>, spelled exactly so (one spelling per value:
        /// no leading zeros, no plus sign, lower-case hex); false for anything else.
        /// </summary>
        public static bool TryParse(ReadOnlySpan<byte> bytes, [NotNullWhen(true)] out PartRecord? record)
        {
            record = null;
            if (bytes.Length > MaxSize)
            {
                return false;
            }
            foreach (byte b in bytes)
            {
                if (b != '\n' && b is < (byte)' ' or > (byte)'~')
                {
                    return false;
                }
            }
            string[] lines = Encoding.ASCII.GetString(bytes).Split('\n');
            // Eight lines, each ended by a newline: the last element is the empty rest.
            if (lines.Length != 9 || lines[8].Length != 0 || lines[0] != Magic)
            {
                return false;
            }
            if (Value(lines[1], "codec") is not { } codec
                || Value(lines[2], "level") is not { } levelText || !int.TryParse(levelText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int level)
                || level.ToString(CultureInfo.InvariantCulture) != levelText
                || Value(lines[3], "compressor") is not { } compressor
                || Value(lines[4], "uncompressed") is not { } uncompressedText || !Digest.TryParse(uncompressedText, out var uncompressed) || uncompressed.Algorithm != "sha256"
                || Value(lines[5], "uncompressed-length") is not { } lengthText
                || Value(lines[6], "blob") is not { } blobText
                || Value(lines[7], "check") is not { } checkText || !checkText.StartsWith("blake3:", StringComparison.Ordinal)
                || checkText.Length != 7 + 64 || !IsName(checkText[7..]))
            {
                return false;
            }
            long? uncompressedLength = null;
            if (lengthText != "-")
            {
                if (!TryLength(lengthText, out long n))
                {
                    return false;
                }
                uncompressedLength = n;
            }
            string[] blobFields = blobText.Split(' ');
            if (blobFields.Length != 2 || !Digest.TryParse(blobFields[0], out var blob) || blob.Algorithm != "sha256"
                || !TryLength(blobFields[1], out long length) || length == 0)
            {
                return false;
            }
            var key = new PartKey(Convert.FromHexString(uncompressed.Hex), codec, level, compressor) { UncompressedLength = uncompressedLength };
            if (Problem(key) is not null)
            {
                return false;
            }
            record = new PartRecord { Key = key, Blob = blob, Length = length, Check = Convert.FromHexString(checkText[7..]) };
            return true;
        }

        private static string? Value(string line, string word) =>
            line.Length > word.Length + 1 && line.StartsWith(word, StringComparison.Ordinal) && line[word.Length] == ' ' ? line[(word.Length + 1)..] : null;

        private static bool TryLength(string text, out long value) =>
            long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value.ToString(CultureInfo.InvariantCulture) == text;

        /// <summary>What reading a record's file found.</summary>
        internal enum ReadResult
        {
            /// <summary>Its bytes (not yet parsed).</summary>
            Read,
            /// <summary>No such file.</summary>
            Absent,
            /// <summary>Larger than any record, or not a regular file: garbage.</summary>
            Garbage,
            /// <summary>It could not be read (permissions, an I/O error): left as it is.</summary>
            Unreadable,
        }

        /// <summary>Reads the record file at <paramref name="path"/>, at most <see cref="MaxSize"/> bytes of it.</summary>
        public static ReadResult ReadFile(string path, out byte[]? bytes)
        {
            bytes = null;
            try
            {
                // RegularFile: a FIFO named like a record must not block the lookup forever.
                using var stream = RegularFile.OpenStream(path, 1, FileOptions.None);
                var buffer = new byte[MaxSize + 1];
                int total = 0;
                int n;
                while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0)
                {
                    total += n;
                }
                if (total > MaxSize)
                {
                    return ReadResult.Garbage;
                }
                bytes = buffer.AsSpan(0, total).ToArray();
                return ReadResult.Read;
            }
            catch (NotRegularFileException)
            {
                return ReadResult.Garbage;
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                return ReadResult.Absent;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return ReadResult.Unreadable;
            }
        }
    }

    /// <summary>The key records of the cache as a whole: listing them, and removing those that lead nowhere.</summary>
    internal static class PartRecords
    {
        /// <summary>
        /// The records of the cache that parse and are filed under their own name, by the blob they
        /// name (the first by file name where several name one blob), looking at no more than
        /// <paramref name="maxFiles"/> files, so a huge or damaged cache costs a bounded walk.
        /// </summary>
        public static Dictionary<Digest, PartRecord> ByBlob(BlobStore store, int maxFiles = 100_000)
        {
            var found = new Dictionary<Digest, PartRecord>();
            foreach (var (name, path) in RecordFiles(store, maxFiles))
            {
                if (PartRecord.ReadFile(path, out byte[]? bytes) == PartRecord.ReadResult.Read
                    && PartRecord.TryParse(bytes, out var record) && PartRecord.NameOf(record.Key) == name)
                {
                    found.TryAdd(record.Blob, record);
                }
            }
            return found;
        }

        /// <summary>
        /// Removes the records that are garbage, and those whose blob is gone unless a running command
        /// leased that blob (it may be committing it now). Call it under
        /// <see cref="EvictionLock.TryExclusive"/>, with the leases read under it: a writer leases the
        /// blob before it commits it and writes the record after, so no record being written is taken.
        /// </summary>
        public static void Sweep(BlobStore store, HashSet<Digest> leased, int maxFiles = 100_000)
        {
            foreach (var (name, path) in RecordFiles(store, maxFiles))
            {
                var result = PartRecord.ReadFile(path, out byte[]? bytes);
                if (result is PartRecord.ReadResult.Absent or PartRecord.ReadResult.Unreadable)
                {
                    continue;
                }
                Digest? missing = null;
                if (result == PartRecord.ReadResult.Read && PartRecord.TryParse(bytes, out var record) && PartRecord.NameOf(record.Key) == name)
                {
                    if (leased.Contains(record.Blob) || File.Exists(store.PathOf(record.Blob)))
                    {
                        continue;
                    }
                    missing = record.Blob;
                }
                RemoveIfUnchanged(store, path, bytes, missing);
            }
        }

        /// <summary>
        /// Removes the record at <paramref name="path"/> judged bad when it held <paramref name="seen"/>
        /// (null: not read), unless a good one replaced it since, or, for a record judged bad because
        /// its blob <paramref name="missingBlob"/> was gone, that blob is back. The record is first
        /// renamed aside (one atomic step): had a writer committed the blob again and renamed its
        /// record into place (the same bytes) after this one was read, a plain delete would take that
        /// one, and the part would be compressed again for nothing.
        /// </summary>
        public static void RemoveIfUnchanged(BlobStore store, string path, byte[]? seen, Digest? missingBlob = null)
        {
            string aside = Path.Combine(store.Root, "tmp", $"{Guid.NewGuid():N}.partial");
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(aside)!);
                File.Move(path, aside);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return; // gone already (another lookup removed it), or not ours to move
            }
            if (seen is not null && PartRecord.ReadFile(aside, out byte[]? now) == PartRecord.ReadResult.Read
                && (!now.AsSpan().SequenceEqual(seen) || (missingBlob is { } blob && File.Exists(store.PathOf(blob)))))
            {
                try
                {
                    // Rewritten since, or its blob is back: not bad after all. Back it goes, unless a newer one took the name meanwhile.
                    File.Move(aside, path, overwrite: false);
                    return;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                }
            }
            Files.TryDelete(aside);
        }

        private static IEnumerable<(string Name, string Path)> RecordFiles(BlobStore store, int maxFiles)
        {
            string directory = Path.Combine(store.Root, BlobStore.PartsDirectory);
            string[] paths;
            try
            {
                paths = Directory.EnumerateFiles(directory).Take(maxFiles).ToArray();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                yield break;
            }
            Array.Sort(paths, StringComparer.Ordinal);
            foreach (string path in paths)
            {
                string name = Path.GetFileName(path);
                if (PartRecord.IsName(name))
                {
                    yield return (name, path);
                }
            }
        }
    }
}
