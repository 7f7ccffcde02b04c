#Requires -Version 7.4
<#
.SYNOPSIS
    Packs a built module folder into the .nupkg a PowerShell gallery serves, with
    PSResourceGet's own Publish-PSResource, and writes it to -OutputDirectory.

.DESCRIPTION
    Publish-PSResource only publishes to a registered repository, and registering one changes
    the user's repository list (~/.local/share/PSResourceGet). So the publish runs in a child
    pwsh (the same pwsh as this one) whose HOME is a temporary folder, with the XDG_* folders and
    PSModulePath unset so that everything it reads or writes lies under that folder: it
    registers a temporary local repository there, publishes the module folder to it, and the
    .nupkg it wrote is moved to -OutputDirectory, replacing a file of the same name. The child
    process also keeps the module's dll out of this one (a loaded dll stays locked).

    The package holds the module folder's files as they are (dlls, manifest, format file,
    en-US help) plus the nuspec made from the manifest. It is not byte-reproducible:
    Publish-PSResource stamps the zip entries with the time and names one entry at random.

    build.ps1 -Task Package and tests/Pester/Package.Tests.ps1 call this script.

.OUTPUTS
    System.IO.FileInfo of the .nupkg written.

.EXAMPLE
    ./tools/build/New-ModulePackage.ps1 -ModulePath out/InitramfsPS -OutputDirectory out
#>
[CmdletBinding()]
param(
    # The module folder (named as the module, holding <Name>.psd1), or its manifest.
    [Parameter(Mandatory)][string]$ModulePath,
    # Where the .nupkg goes; created if missing.
    [Parameter(Mandatory)][string]$OutputDirectory
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ModulePath = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($ModulePath)
$OutputDirectory = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($OutputDirectory)
if (Test-Path -LiteralPath $ModulePath -PathType Leaf) { $ModulePath = Split-Path -Parent $ModulePath }
$name = Split-Path -Leaf $ModulePath
$manifest = Join-Path $ModulePath "$name.psd1"
if (-not (Test-Path -LiteralPath $manifest -PathType Leaf)) {
    throw "No module manifest '$name.psd1' in '$ModulePath': Publish-PSResource wants a folder named as its module."
}

# Quotes a string for a PowerShell command line given to a child pwsh.
function ConvertTo-Literal([string]$Value) { "'" + $Value.Replace("'", "''") + "'" }

$work = Join-Path ([IO.Path]::GetTempPath()) ('initramfsps-package-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
$childHome = Join-Path $work 'home'
$repository = Join-Path $work 'repository'
$null = New-Item -ItemType Directory -Path $childHome, $repository
try {
    $command = @(
        '$ErrorActionPreference = ''Stop'''
        '$PSStyle.OutputRendering = ''PlainText'''  # its messages are read as text, not shown by a terminal
        "Register-PSResourceRepository -Name InitramfsPSPackage -Uri $(ConvertTo-Literal $repository) -Trusted"
        "Publish-PSResource -Path $(ConvertTo-Literal $ModulePath) -Repository InitramfsPSPackage"
    ) -join "`n"

    # The pwsh this script runs in: an installed pwsh, or the dotnet host running pwsh.dll
    # (`dotnet pwsh`, the repository's local tool).
    $psi = [Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
    if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') {
        $psi.ArgumentList.Add([Environment]::GetCommandLineArgs()[0])  # .../pwsh.dll
    }
    foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $command) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.WorkingDirectory = $work
    $psi.Environment['HOME'] = $childHome
    foreach ($k in 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'PSModulePath') { [void]$psi.Environment.Remove($k) }
    $process = [Diagnostics.Process]::Start($psi)
    $stderr = $process.StandardError.ReadToEndAsync()
    $stdout = $process.StandardOutput.ReadToEnd()
    $process.WaitForExit()
    if ($process.ExitCode -ne 0) {
        throw "Publish-PSResource of '$ModulePath' failed with exit code $($process.ExitCode):`n$stdout$($stderr.Result)"
    }
    $said = "$stdout$($stderr.Result)".Trim()
    if ($said) { Write-Host $said }  # warnings: it prints nothing else when all is well

    $written = @(Get-ChildItem -LiteralPath $repository -Filter '*.nupkg' -File)
    if ($written.Count -ne 1) { throw "Publish-PSResource wrote $($written.Count) .nupkg files to '$repository', not one." }
    $null = New-Item -ItemType Directory -Path $OutputDirectory -Force
    $target = Join-Path $OutputDirectory $written[0].Name
    Move-Item -LiteralPath $written[0].FullName -Destination $target -Force
    Get-Item -LiteralPath $target
}
finally {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}
