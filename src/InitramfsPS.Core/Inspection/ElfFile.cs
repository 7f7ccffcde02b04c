using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Inspection
{
    /// <summary>
    /// What the dynamic loader needs of an ELF file: its class, byte order and machine, the program
    /// interpreter (PT_INTERP) and, from the dynamic section, DT_NEEDED, DT_RPATH and DT_RUNPATH.
    /// Only the headers are read, with positional reads bounded by the file length; a malformed file
    /// gives <see cref="Problem"/>, never an exception.
    /// </summary>
    internal sealed class ElfFile
    {
        private const int MaxProgramHeaders = 4096;
        private const long MaxDynamicBytes = 1 << 20;
        private const long MaxStringTableBytes = 4 << 20;

        /// <summary>
        /// The most bytes of DT_NEEDED, DT_RPATH and DT_RUNPATH strings read from one file, each
        /// distinct string once. Real objects need a few hundred; 20,000 DT_NEEDED values pointing
        /// at different offsets of one long string would otherwise decode 20,000 strings of a MB.
        /// </summary>
        private const int MaxDynamicStringBytes = 4 << 20;
        private const int PtLoad = 1;
        private const int PtDynamic = 2;
        private const int PtInterp = 3;
        private const long DtNull = 0;
        private const long DtNeeded = 1;
        private const long DtStrTab = 5;
        private const long DtStrSz = 10;
        private const long DtRPath = 15;
        private const long DtRunPath = 29;

        private ElfFile()
        {
        }

        /// <summary>True for ELFCLASS64.</summary>
        public bool Is64 { get; private set; }

        /// <summary>True for ELFDATA2LSB.</summary>
        public bool LittleEndian { get; private set; }

        /// <summary>e_machine (62 x86-64, 183 AArch64, 3 i386, 40 ARM, 243 RISC-V).</summary>
        public int Machine { get; private set; }

        /// <summary>e_type (2 executable, 3 shared object or PIE).</summary>
        public int Type { get; private set; }

        /// <summary>The program interpreter (PT_INTERP), or null for a static or non-executable object.</summary>
        public string? Interpreter { get; private set; }

        /// <summary>DT_NEEDED entries, in order.</summary>
        public List<string> Needed { get; } = new();

        /// <summary>DT_RPATH directories (still with $ORIGIN).</summary>
        public List<string> RPath { get; } = new();

        /// <summary>DT_RUNPATH directories (still with $ORIGIN).</summary>
        public List<string> RunPath { get; } = new();

        /// <summary>Why the headers could not be read completely, or null.</summary>
        public string? Problem { get; private set; }

        /// <summary>True when the first four bytes are the ELF magic.</summary>
        public static bool HasMagic(ReadOnlySpan<byte> head) =>
            head.Length >= 4 && head[0] == 0x7F && head[1] == (byte)'E' && head[2] == (byte)'L' && head[3] == (byte)'F';

        /// <summary>Reads the headers of <paramref name="content"/>; null when it is not an ELF file.</summary>
        public static ElfFile? Read(Content content, ContentReader reader)
        {
            var file = new Reader(content, reader);
            byte[]? ident = file.Read(0, 16);
            if (ident is null || !HasMagic(ident))
            {
                return null;
            }
            var elf = new ElfFile();
            try
            {
                elf.Parse(file, ident);
            }
            catch (MalformedException ex)
            {
                elf.Problem = ex.Message;
            }
            catch (System.IO.IOException ex)
            {
                elf.Problem = "cannot be read: " + ex.Message;
            }
            catch (Errors.InitramfsException ex) when (!ex.ContentMismatch)
            {
                elf.Problem = "cannot be read: " + ex.Message;
            }
            return elf;
        }

        private void Parse(Reader file, byte[] ident)
        {
            Is64 = ident[4] switch
            {
                1 => false,
                2 => true,
                _ => throw new MalformedException($"has an unknown ELF class {ident[4]}"),
            };
            LittleEndian = ident[5] switch
            {
                1 => true,
                2 => false,
                _ => throw new MalformedException($"has an unknown ELF data encoding {ident[5]}"),
            };
            int ehSize = Is64 ? 64 : 52;
            byte[] eh = file.Read(0, ehSize) ?? throw new MalformedException("is shorter than an ELF header");
            Type = U16(eh, 16);
            Machine = U16(eh, 18);
            long phOff = Is64 ? (long)Math.Min(U64(eh, 32), long.MaxValue) : U32(eh, 28);
            int phEntSize = U16(eh, Is64 ? 54 : 42);
            int phNum = U16(eh, Is64 ? 56 : 44);
            if (phNum == 0)
            {
                return;
            }
            int minEnt = Is64 ? 56 : 32;
            if (phEntSize < minEnt)
            {
                throw new MalformedException($"has program headers of {phEntSize} bytes (at least {minEnt} expected)");
            }
            if (phNum > MaxProgramHeaders)
            {
                throw new MalformedException($"claims {phNum} program headers");
            }
            byte[] ph = file.Read(phOff, (long)phEntSize * phNum) ?? throw new MalformedException("has program headers beyond the end of the file");
            var loads = new List<(ulong VAddr, ulong FileSize, ulong Offset)>();
            long dynOff = -1, dynSize = 0;
            for (int i = 0; i < phNum; i++)
            {
                int b = i * phEntSize;
                uint pType = U32(ph, b);
                ulong pOffset = Is64 ? U64(ph, b + 8) : U32(ph, b + 4);
                ulong pVAddr = Is64 ? U64(ph, b + 16) : U32(ph, b + 8);
                ulong pFileSz = Is64 ? U64(ph, b + 32) : U32(ph, b + 16);
                switch (pType)
                {
                    case PtLoad:
                        loads.Add((pVAddr, pFileSz, pOffset));
                        break;
                    case PtDynamic:
                        dynOff = (long)Math.Min(pOffset, long.MaxValue);
                        dynSize = (long)Math.Min(pFileSz, long.MaxValue);
                        break;
                    case PtInterp:
                        if (pFileSz == 0 || pFileSz > RootfsPath.PathMax)
                        {
                            throw new MalformedException($"has a PT_INTERP of {pFileSz} bytes");
                        }
                        byte[] interp = file.Read((long)Math.Min(pOffset, long.MaxValue), (long)pFileSz)
                            ?? throw new MalformedException("has a PT_INTERP beyond the end of the file");
                        int nul = Array.IndexOf(interp, (byte)0);
                        Interpreter = Encoding.UTF8.GetString(interp, 0, nul < 0 ? interp.Length : nul);
                        break;
                }
            }
            if (dynOff < 0 || dynSize == 0)
            {
                return;
            }
            if (dynSize > MaxDynamicBytes)
            {
                throw new MalformedException($"has a dynamic section of {dynSize} bytes");
            }
            byte[] dyn = file.Read(dynOff, dynSize) ?? throw new MalformedException("has a dynamic section beyond the end of the file");
            int entSize = Is64 ? 16 : 8;
            var needed = new List<ulong>();
            var rpath = new List<ulong>();
            var runpath = new List<ulong>();
            ulong strTab = 0, strSz = 0;
            bool haveStrTab = false;
            for (int off = 0; off + entSize <= dyn.Length; off += entSize)
            {
                long tag = Is64 ? (long)U64(dyn, off) : (int)U32(dyn, off);
                ulong val = Is64 ? U64(dyn, off + 8) : U32(dyn, off + 4);
                if (tag == DtNull)
                {
                    break;
                }
                switch (tag)
                {
                    case DtNeeded: needed.Add(val); break;
                    case DtRPath: rpath.Add(val); break;
                    case DtRunPath: runpath.Add(val); break;
                    case DtStrTab: strTab = val; haveStrTab = true; break;
                    case DtStrSz: strSz = val; break;
                }
            }
            if (needed.Count + rpath.Count + runpath.Count == 0)
            {
                return;
            }
            if (!haveStrTab)
            {
                throw new MalformedException("has DT_NEEDED entries but no DT_STRTAB");
            }
            long strOff = -1;
            foreach (var (vaddr, size, offset) in loads)
            {
                if (strTab >= vaddr && strTab - vaddr < size)
                {
                    strOff = (long)Math.Min(offset + (strTab - vaddr), long.MaxValue);
                    break;
                }
            }
            if (strOff < 0)
            {
                // Some objects (and the loader itself) use file offsets as addresses; try that as a last resort.
                if (loads.Count == 0 && strTab < (ulong)file.Length)
                {
                    strOff = (long)strTab;
                }
                else
                {
                    throw new MalformedException($"has a DT_STRTAB address 0x{strTab:x} outside every PT_LOAD segment");
                }
            }
            long tableSize = strSz == 0 ? Math.Min(MaxStringTableBytes, file.Length - strOff) : (long)Math.Min(strSz, (ulong)MaxStringTableBytes);
            if (tableSize <= 0 || strOff >= file.Length)
            {
                throw new MalformedException("has a string table beyond the end of the file");
            }
            byte[] table = file.Read(strOff, Math.Min(tableSize, file.Length - strOff)) ?? throw new MalformedException("has a string table beyond the end of the file");
            var strings = new Strings(table);
            foreach (ulong n in needed)
            {
                Needed.Add(strings.At(n));
            }
            foreach (ulong r in rpath)
            {
                RPath.AddRange(strings.At(r).Split(':', StringSplitOptions.RemoveEmptyEntries));
            }
            foreach (ulong r in runpath)
            {
                RunPath.AddRange(strings.At(r).Split(':', StringSplitOptions.RemoveEmptyEntries));
            }
        }

        /// <summary>Strings of a string table by offset, each decoded once, at most <see cref="MaxDynamicStringBytes"/> in all.</summary>
        private sealed class Strings
        {
            private readonly byte[] table;
            private readonly Dictionary<ulong, string> decoded = new();
            private int budget = MaxDynamicStringBytes;

            public Strings(byte[] table) => this.table = table;

            public string At(ulong offset)
            {
                if (decoded.TryGetValue(offset, out string? s))
                {
                    return s;
                }
                if (offset >= (ulong)table.Length)
                {
                    throw new MalformedException($"has a string offset {offset} past its string table of {table.Length} bytes");
                }
                int start = (int)offset;
                // Look for the NUL no further than the budget allows: the search costs what is decoded.
                int window = Math.Min(table.Length - start, budget + 1);
                int end = Array.IndexOf(table, (byte)0, start, window);
                if (end < 0)
                {
                    throw new MalformedException(window < table.Length - start
                        ? $"has DT_NEEDED, DT_RPATH and DT_RUNPATH strings of more than {MaxDynamicStringBytes} bytes in all"
                        : "has an unterminated string in its string table");
                }
                budget -= end - start;
                s = Encoding.UTF8.GetString(table, start, end - start);
                decoded[offset] = s;
                return s;
            }
        }

        private ushort U16(byte[] b, int o) => LittleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(o)) : BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(o));

        private uint U32(byte[] b, int o) => LittleEndian ? BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o)) : BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(o));

        private ulong U64(byte[] b, int o) => LittleEndian ? BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(o)) : BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(o));

        private sealed class MalformedException : Exception
        {
            public MalformedException(string message)
                : base(message)
            {
            }
        }

        /// <summary>Bounded positional reads: a range not wholly inside the file gives null.</summary>
        private sealed class Reader
        {
            private readonly Content content;
            private readonly ContentReader reader;

            public Reader(Content content, ContentReader reader)
            {
                this.content = content;
                this.reader = reader;
            }

            public long Length => content.Length;

            public byte[]? Read(long offset, long count)
            {
                if (offset < 0 || count < 0 || count > int.MaxValue || offset > Length || count > Length - offset)
                {
                    return null;
                }
                var buffer = new byte[count];
                int filled = 0;
                while (filled < buffer.Length)
                {
                    int got = content.Read(reader, offset + filled, buffer.AsSpan(filled));
                    if (got <= 0)
                    {
                        return null;
                    }
                    filled += got;
                }
                return buffer;
            }
        }
    }
}
