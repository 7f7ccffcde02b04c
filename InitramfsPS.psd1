@{
    RootModule           = 'InitramfsPS.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = 'f822c1b4-dce2-4b15-b07c-844d82e079ce'
    Author               = 'InitramfsPS contributors'
    CompanyName          = 'InitramfsPS contributors'
    Copyright            = '(c) 2026 InitramfsPS contributors. MIT License.'
    Description          = 'Turns OCI container images into bootable, reproducible Linux initramfs cpio archives for microVMs, applying the layers in memory with no container runtime and no root.'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.4'
    FormatsToProcess     = @('InitramfsPS.Format.ps1xml')
    CmdletsToExport      = @(
        'Get-OciImage'
        'Expand-OciLayers'
        'Add-InitramfsFile'
        'Set-InitramfsInit'
        'Export-Initramfs'
        'Get-OciCache'
        'Clear-OciCache'
        'Get-InitramfsItem'
        'Remove-InitramfsItem'
        'Import-Initramfs'
        'Compare-Initramfs'
        'Test-Initramfs'
        'Publish-Initramfs'
        'Start-InitramfsVM'
        'Save-Initramfs'
        'Find-Initramfs'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('initramfs', 'oci', 'cpio', 'microvm', 'firecracker', 'container', 'Linux')
            ProjectUri   = 'https://github.com/initramfsps/InitramfsPS'
            LicenseUri   = 'https://github.com/initramfsps/InitramfsPS/blob/main/LICENSE'
            ReleaseNotes = '0.1.0: images from registries, OCI image layouts and docker save archives to bootable, reproducible cpio archives; Get-Help for every cmdlet and about_InitramfsPS.'
        }
    }
}
