using System.Management.Automation;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Applies an image's layers into an in-memory Rootfs.</summary>
    [Cmdlet(VerbsData.Expand, "OciLayers")]
    [OutputType(typeof(Rootfs))]
    public sealed class ExpandOciLayersCommand : InitramfsCmdlet
    {
        /// <summary>The image from Get-OciImage.</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
        [ValidateNotNull]
        public OciImage InputObject { get; set; } = null!;

        /// <summary>The most bytes one layer may expand to; a layer past it is refused as a decompression bomb.</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long MaxLayerSize { get; set; } = Initramfs.DefaultMaxLayerSize;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard(InputObject, () => WriteObject(ExpandImage(InputObject, MaxLayerSize)));
        }
    }
}
