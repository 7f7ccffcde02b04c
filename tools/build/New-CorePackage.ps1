#Requires -Version 7.4
<#
.SYNOPSIS
    Packs src/InitramfsPS.Core, the engine as a C# library, into InitramfsPS.Core.<version>.nupkg
    in -OutputDirectory, with the version of the module manifest.

.DESCRIPTION
    `dotnet pack` in Release, with the manifest's ModuleVersion as the package's version, so the
    module and the library of one build carry one version. The package holds InitramfsPS.Core.dll
    and its XML documentation for net8.0, and depends on the NuGet packages the engine uses.

    build.ps1 -Task Package and tests/Pester/Package.Tests.ps1 call this script.

.OUTPUTS
    System.IO.FileInfo of the .nupkg written.

.EXAMPLE
    ./tools/build/New-CorePackage.ps1 -ManifestPath out/InitramfsPS/InitramfsPS.psd1 -OutputDirectory out
#>
[CmdletBinding()]
param(
    # The module manifest whose ModuleVersion the package takes.
    [Parameter(Mandatory)][string]$ManifestPath,
    # Where the .nupkg goes; created if missing.
    [Parameter(Mandatory)][string]$OutputDirectory
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ManifestPath = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($ManifestPath)
$OutputDirectory = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($OutputDirectory)
$version = (Import-PowerShellDataFile -LiteralPath $ManifestPath).ModuleVersion
$project = Join-Path $PSScriptRoot '../../src/InitramfsPS.Core/InitramfsPS.Core.csproj'
$null = New-Item -ItemType Directory -Path $OutputDirectory -Force
$package = Join-Path $OutputDirectory "InitramfsPS.Core.$version.nupkg"
Remove-Item -LiteralPath $package -Force -ErrorAction SilentlyContinue

$output = & dotnet pack $project --configuration Release --output $OutputDirectory --nologo "-p:Version=$version" 2>&1
if ($LASTEXITCODE -ne 0) {
    throw "dotnet pack of InitramfsPS.Core failed:`n$($output -join "`n")"
}
if (-not (Test-Path -LiteralPath $package -PathType Leaf)) {
    throw "dotnet pack wrote no '$package':`n$($output -join "`n")"
}
Get-Item -LiteralPath $package
