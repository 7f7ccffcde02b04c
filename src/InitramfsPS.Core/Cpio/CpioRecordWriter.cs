using System;
using System.IO;

namespace InitramfsPS.Cpio
{
    /// <summary>
    /// Writes newc records to a stream (u-root's RecordWriter): a header and padded name, the data,
    /// padding, and at the end the TRAILER!!! record. The data may be written in pieces, or written
    /// to the stream by the caller and counted with <see cref="Advance"/>, so that a file's bytes go
    /// straight from their source into the stream's buffer.
    /// </summary>
    internal sealed class CpioRecordWriter
    {
        private static readonly byte[] Zeros = new byte[4];
        private readonly Stream output;
        private readonly byte[] header = new byte[NewcCodec.HeaderSize];

        /// <summary>Writes to <paramref name="output"/>.</summary>
        public CpioRecordWriter(Stream output) => this.output = output;

        /// <summary>Bytes written so far.</summary>
        public long Position { get; private set; }

        /// <summary>Writes a whole record: the header, the name and <paramref name="data"/>, which must be FileSize bytes.</summary>
        public void WriteRecord(in CpioHeader h, ReadOnlySpan<byte> name, ReadOnlySpan<byte> data)
        {
            if (data.Length != h.FileSize)
            {
                throw new ArgumentException($"The header says {h.FileSize} bytes of data; {data.Length} were given.", nameof(data));
            }
            WriteHeader(h, name);
            WriteData(data);
            EndData();
        }

        /// <summary>Writes a header and the padded name; the caller then writes exactly FileSize bytes and calls <see cref="EndData"/>.</summary>
        public void WriteHeader(in CpioHeader h, ReadOnlySpan<byte> name)
        {
            NewcCodec.Encode(h, (uint)name.Length + 1, header);
            output.Write(header);
            output.Write(name);
            output.WriteByte(0);
            Position += header.Length + name.Length + 1;
            Pad();
        }

        /// <summary>Writes part of an entry's data.</summary>
        public void WriteData(ReadOnlySpan<byte> data)
        {
            output.Write(data);
            Position += data.Length;
        }

        /// <summary>Counts <paramref name="count"/> bytes of data the caller wrote to the output stream itself.</summary>
        public void Advance(int count) => Position += count;

        /// <summary>Counts <paramref name="count"/> bytes of whole records the caller had written elsewhere (a part copied from the part cache).</summary>
        public void Skip(long count) => Position += count;

        /// <summary>Pads after an entry's data.</summary>
        public void EndData() => Pad();

        /// <summary>Writes the TRAILER!!! record that ends the archive.</summary>
        public void WriteTrailer() => WriteHeader(NewcCodec.TrailerHeader, NewcCodec.TrailerName);

        private void Pad()
        {
            int pad = NewcCodec.Padding(Position);
            if (pad > 0)
            {
                output.Write(Zeros, 0, pad);
                Position += pad;
            }
        }
    }
}
