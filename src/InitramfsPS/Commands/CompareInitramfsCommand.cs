using System.IO;
using System.Management.Automation;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.Import;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Lists the entries added, removed and changed between two rootfs, images or archives.</summary>
    [Cmdlet(VerbsData.Compare, "Initramfs")]
    [OutputType(typeof(RootfsDifference))]
    public sealed class CompareInitramfsCommand : InitramfsCmdlet
    {
        private Rootfs? reference;

        /// <summary>The rootfs to compare against: a Rootfs, an OciImage, or the path of an archive.</summary>
        [Parameter(Mandatory = true, Position = 0)]
        [ValidateNotNull]
        public PSObject ReferenceObject { get; set; } = null!;

        /// <summary>The rootfs compared with the reference: a Rootfs, an OciImage, or the path of an archive.</summary>
        [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
        [ValidateNotNull]
        public PSObject DifferenceObject { get; set; } = null!;

        /// <summary>Also list the paths that are alike, as Equal.</summary>
        [Parameter]
        public SwitchParameter IncludeEqual { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard(DifferenceObject.BaseObject, () =>
            {
                reference ??= ToRootfs(ReferenceObject, nameof(ReferenceObject));
                var difference = ToRootfs(DifferenceObject, nameof(DifferenceObject));
                foreach (var d in Initramfs.Compare(reference, difference, IncludeEqual, CancellationToken))
                {
                    WriteObject(d);
                }
            });
        }

        private Rootfs ToRootfs(PSObject input, string parameter)
        {
            switch (input.BaseObject)
            {
                case Rootfs rootfs:
                    return Leased(rootfs);
                case OciImage image:
                    return ExpandImage(image, Initramfs.DefaultMaxLayerSize);
                case FileInfo file:
                    return ImportArchive(file.FullName);
                case string text:
                    string path;
                    try
                    {
                        var resolved = GetResolvedProviderPathFromPSPath(text, out var provider);
                        if (provider.Name != "FileSystem" || resolved.Count != 1)
                        {
                            throw new InitramfsException("CompareInputInvalid", FailureKind.InvalidArgument,
                                $"-{parameter} '{text}' must name exactly one archive file ({resolved.Count} match).", text);
                        }
                        path = resolved[0];
                    }
                    catch (ItemNotFoundException)
                    {
                        throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The archive '{text}' does not exist.", text);
                    }
                    catch (SessionStateException ex)
                    {
                        throw new InitramfsException("ArchivePathNotFileSystem", FailureKind.InvalidArgument, $"-{parameter} '{text}' is not a file system path: {ex.Message}", text, ex);
                    }
                    return ImportArchive(path);
                default:
                    throw new InitramfsException("CompareInputInvalid", FailureKind.InvalidArgument,
                        $"-{parameter} takes a Rootfs, an OciImage or the path of an archive, not a {input.BaseObject.GetType().Name}.", input.BaseObject);
            }
        }

        private Rootfs ImportArchive(string path)
        {
            var result = Initramfs.Import(path, Cache, cancellationToken: CancellationToken);
            foreach (string note in result.Notes)
            {
                WriteWarning($"{path}: {note}");
            }
            return result.Rootfs;
        }
    }
}
