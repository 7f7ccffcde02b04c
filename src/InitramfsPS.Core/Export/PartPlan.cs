using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Compression;
using InitramfsPS.Cpio;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Export
{
    /// <summary>One part of an export: its entries, its bytes of cpio, and (with a part cache) its recipe.</summary>
    internal sealed class PlannedPart
    {
        /// <summary>Index of its first entry.</summary>
        public int Start { get; init; }

        /// <summary>Index after its last entry.</summary>
        public int End { get; init; }

        /// <summary>Bytes of cpio it holds (the last part: the trailer included).</summary>
        public long Bytes { get; init; }

        /// <summary>
        /// What its bytes are made of (headers, names, and the identity of each content: see
        /// <see cref="Content.AppendIdentity"/>), hashed: two parts with the same recipe are the
        /// same bytes. Null when no part cache is used.
        /// </summary>
        public byte[]? Recipe { get; set; }
    }

    /// <summary>
    /// Where an export's parts end, decided before a byte is written: at the entry boundaries
    /// <see cref="PartCuts"/> chooses from the names and record sizes, never inside a hardlink
    /// group. Knowing the parts first lets an export copy an unchanged part from the part cache
    /// without reading its entries' contents.
    /// </summary>
    internal static class PartPlan
    {
        /// <summary>
        /// The parts of the entries (with <paramref name="headers"/>, in order), the trailer in the
        /// last; one part when <paramref name="cuts"/> is <see cref="PartCuts.None"/>.
        /// </summary>
        public static List<PlannedPart> Cut(IReadOnlyList<RootfsEntry> entries, IReadOnlyList<CpioHeader> headers, IReadOnlyList<bool> carriesData, PartCuts cuts)
        {
            // A part may end only where no hardlink group is half written: the names of a group
            // stay in one part (design: a reader that takes parts one by one must see the data and
            // its links together).
            var groupLeft = new Dictionary<HardlinkGroup, int>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < entries.Count; i++)
            {
                if (headers[i].NLink > 1 && entries[i].Type == EntryType.File && entries[i].Hardlink is { } g)
                {
                    groupLeft[g] = groupLeft.TryGetValue(g, out int n) ? n + 1 : 1;
                }
            }
            var parts = new List<PlannedPart>();
            int openGroups = 0, start = 0;
            long partBytes = 0, previousRecord = 0;
            byte[] name = new byte[1024];
            for (int i = 0; i < entries.Count; i++)
            {
                var e = entries[i];
                int nameLength = EncodeName(e, ref name);
                long record = NewcCodec.RecordSize(nameLength, headers[i].FileSize);
                if (openGroups == 0 && cuts.CutBefore(partBytes, previousRecord, name.AsSpan(0, nameLength), record))
                {
                    parts.Add(new PlannedPart { Start = start, End = i, Bytes = partBytes });
                    start = i;
                    partBytes = 0;
                }
                partBytes += record;
                previousRecord = record;
                if (e.Type == EntryType.File && e.Hardlink is { } group && groupLeft.TryGetValue(group, out int left))
                {
                    if (carriesData[i])
                    {
                        openGroups++;
                    }
                    groupLeft[group] = --left;
                    if (left == 0)
                    {
                        openGroups--;
                    }
                }
            }
            parts.Add(new PlannedPart { Start = start, End = entries.Count, Bytes = partBytes + NewcCodec.TrailerSize });
            return parts;
        }

        /// <summary>
        /// Sets each part's recipe: per entry its header as written (name and padding included)
        /// and its content's identity, and the trailer in the last part. Host files are read whole
        /// (their bytes are their only identity); a layer's contents are not read.
        /// </summary>
        /// <remarks>
        /// Parts are hashed on up to <paramref name="workers"/> threads, each with its own reader:
        /// on Debian minbase the 8.7k headers and content identities took 28 ms of CPU, before the
        /// first kept part could be looked up.
        /// </remarks>
        public static void SetRecipes(List<PlannedPart> parts, IReadOnlyList<RootfsEntry> entries, IReadOnlyList<CpioHeader> headers, IReadOnlyList<bool> carriesData, int workers, CancellationToken cancellationToken)
        {
            var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, workers), CancellationToken = cancellationToken };
            try
            {
                Parallel.For(0, parts.Count, options,
                    () => new RecipeWork(),
                    (k, _, work) =>
                    {
                        parts[k].Recipe = work.Recipe(parts[k], entries, headers, carriesData, last: parts[k].End == entries.Count);
                        return work;
                    },
                    work => work.Dispose());
            }
            catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
            {
                // A host file that changed, Ctrl+C: thrown as itself, with its id, as on one thread.
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw();
            }
        }

        /// <summary>One thread's buffers and reader for <see cref="SetRecipes"/>.</summary>
        private sealed class RecipeWork : IDisposable
        {
            private readonly ContentReader reader = new();
            private byte[] name = new byte[1024];
            private byte[] header = new byte[NewcCodec.HeaderSize + 1024];

            public byte[] Recipe(PlannedPart part, IReadOnlyList<RootfsEntry> entries, IReadOnlyList<CpioHeader> headers, IReadOnlyList<bool> carriesData, bool last)
            {
                using var hasher = Blake3.Hasher.New();
                hasher.Update("initramfsps part recipe 1\n"u8);
                for (int i = part.Start; i < part.End; i++)
                {
                    var e = entries[i];
                    int nameLength = EncodeName(e, ref name);
                    // The header as written: 110 bytes, the name, its NUL and the padding (zeros).
                    int headerLength = (int)NewcCodec.Align4(NewcCodec.HeaderSize + nameLength + 1);
                    if (header.Length < headerLength)
                    {
                        header = new byte[headerLength];
                    }
                    header.AsSpan(0, headerLength).Clear();
                    NewcCodec.Encode(headers[i], (uint)nameLength + 1, header);
                    name.AsSpan(0, nameLength).CopyTo(header.AsSpan(NewcCodec.HeaderSize));
                    hasher.Update(header.AsSpan(0, headerLength));
                    if (!carriesData[i] || headers[i].FileSize == 0)
                    {
                        continue;
                    }
                    if (e.Type == EntryType.Symlink)
                    {
                        hasher.Update(Encoding.UTF8.GetBytes(e.LinkTarget!));
                    }
                    else
                    {
                        e.Content!.AppendIdentity(hasher, reader);
                    }
                }
                if (last)
                {
                    hasher.Update("TRAILER!!!"u8);
                }
                byte[] recipe = new byte[32];
                hasher.Finalize(recipe);
                return recipe;
            }

            public void Dispose() => reader.Dispose();
        }

        /// <summary>The entry's name as the archive holds it (UTF-8, no leading slash) into <paramref name="buffer"/>, grown as needed; returns its length.</summary>
        internal static int EncodeName(RootfsEntry entry, ref byte[] buffer) => Encode(RootfsPath.ArchiveName(entry.Path), ref buffer);

        private static int Encode(string archiveName, ref byte[] buffer)
        {
            int max = Encoding.UTF8.GetMaxByteCount(archiveName.Length);
            if (buffer.Length < max)
            {
                buffer = new byte[max];
            }
            return Encoding.UTF8.GetBytes(archiveName, buffer);
        }
    }
}
