using System;
using System.Collections.Generic;
using System.Management.Automation;
using InitramfsPS.Import;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Reads existing initramfs archives (plain, gzip, zstd, or concatenations of them) into Rootfs objects.</summary>
    [Cmdlet(VerbsData.Import, "Initramfs", DefaultParameterSetName = PathSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class ImportInitramfsCommand : InitramfsCmdlet
    {
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";

        /// <summary>Archives to read; wildcards allowed.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = null!;

        /// <summary>Archives to read, taken literally.</summary>
        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
        [Alias("PSPath", "LP")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = null!;

        /// <summary>The most bytes the compressed parts of one archive may expand to.</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long MaxSize { get; set; } = Initramfs.DefaultMaxImportSize;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            foreach (string file in ResolveHostPaths(ParameterSetName == LiteralPathSet ? null : Path, ParameterSetName == LiteralPathSet ? LiteralPath : null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out _))
            {
                Guard(file, () => WriteObject(Import(file)));
            }
        }

        private Rootfs Import(string file)
        {
            const string activity = "Importing initramfs";
            // The import reports on this thread: the progress is written as it comes.
            var progress = new Reporter<InitramfsProgress>(p => Progress(4, activity, file, p.Total == 0 ? 100 : (int)(p.Done * 100 / p.Total)));
            ImportResult result;
            try
            {
                result = Initramfs.Import(file, Cache, MaxSize, progress, CancellationToken);
            }
            finally
            {
                CompleteProgress(4, activity);
            }
            foreach (var part in result.Parts)
            {
                WriteVerbose($"{file}: {part.Compression} part at offset {part.Offset}, {part.Length} bytes, {part.UncompressedLength} bytes of cpio, {part.Records} records.");
            }
            foreach (string note in result.Notes)
            {
                WriteWarning(note);
            }
            return result.Rootfs;
        }
    }
}
