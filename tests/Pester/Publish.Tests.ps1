# Publish-Initramfs (issue 17): an archive and its kernel pushed as an OCI 1.1 artifact.
#  - to docker-registry 2.8 (no referrers API: the fallback tag sha256-<hex> lists the artifact)
#    and to tests/tools/referrers-registry.py (the referrers API and its OCI-Subject answer);
#  - read back by skopeo (inspect --raw, copy to dir:): the part layers joined are the archive,
#    byte for byte, for zstd and gzip;
#  - a second archive sharing parts with the first uploads only its new parts, counted in
#    docker-registry's access log;
#  - an upload cut mid-way (tests/tools/fault-proxy.py cut-upload) resumes from the offset the
#    registry reports, and the blob is whole;
#  - refused credentials, a registry that refuses pushes, -WhatIf, secrets, hostile answers.
# Every server binds to 127.0.0.1 on a free port and is stopped (by PID) in AfterAll.
# Needs docker-registry, skopeo, busybox-static, htpasswd, openssl, python3, a kernel in /boot.

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force

    $script:Work = New-TestDirectory -Prefix 'initramfsps-publish'
    $script:Servers = [System.Collections.Generic.List[object]]::new()
    $script:EnvNames = 'INITRAMFSPS_CACHE', 'HOME', 'DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'SOURCE_DATE_EPOCH'
    $script:SavedEnv = @{}
    foreach ($n in $EnvNames) { $SavedEnv[$n] = [Environment]::GetEnvironmentVariable($n) }
    # No credentials of the machine's user may take part.
    $env:HOME = New-TestDirectory -Parent $Work -Prefix 'home'
    $env:XDG_RUNTIME_DIR = New-TestDirectory -Parent $Work -Prefix 'xdg'
    Remove-Item Env:DOCKER_CONFIG, Env:REGISTRY_AUTH_FILE, Env:SOURCE_DATE_EPOCH -ErrorAction SilentlyContinue
    $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'

    function script:Add-Server($Server) { $Servers.Add($Server); $Server }
    function script:Get-FileSha256([string] $Path) { 'sha256:' + (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() }
    function script:New-RandomBytes([int] $Length, [int] $Seed) { $b = [byte[]]::new($Length); [Random]::new($Seed).NextBytes($b); , $b }
    function script:Get-ExpectedError([scriptblock] $Action) {
        $ErrorActionPreference = 'Stop'
        $out = $null
        try { $out = & $Action } catch { return $_ }
        throw "Expected an error, but it succeeded: $(@($out) -join ', ')"
    }
    # The manifest skopeo reads (it is its own client: what it sees is what the registry serves).
    function script:Get-SkopeoManifest([string] $Reference) {
        $raw = & skopeo inspect --raw --tls-verify=false "docker://$Reference" 2>&1
        if ($LASTEXITCODE -ne 0) { throw "skopeo inspect $Reference failed: $raw" }
        [pscustomobject]@{ Raw = ($raw -join "`n"); Json = (($raw -join "`n") | ConvertFrom-Json) }
    }
    # skopeo copy to a dir: transport; returns the directory (blobs are files named by their hex).
    function script:Copy-WithSkopeo([string] $Reference) {
        $dir = Join-Path $Work ('skopeo-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
        $out = & skopeo copy --src-tls-verify=false "docker://$Reference" "dir:$dir" 2>&1
        if ($LASTEXITCODE -ne 0) { throw "skopeo copy $Reference failed: $out" }
        $dir
    }
    function script:Join-PartLayers([string] $Dir, $Manifest) {
        $memory = [IO.MemoryStream]::new()
        foreach ($l in $Manifest.layers | Where-Object mediaType -Like 'application/vnd.initramfsps.initramfs.part.*') {
            $bytes = [IO.File]::ReadAllBytes((Join-Path $Dir ($l.digest -replace '^sha256:', '')))
            $memory.Write($bytes, 0, $bytes.Length)
        }
        , $memory.ToArray()
    }

    $script:Kernel = Get-ChildItem /boot/vmlinuz-* -ErrorAction SilentlyContinue | Sort-Object Name | Select-Object -Last 1 -ExpandProperty FullName
    if (-not $Kernel) { throw 'No kernel in /boot (linux-image-amd64).' }

    # A busybox image with three 3 MiB files, so that its archive has several parts.
    $layer = New-BusyboxLayer -Init "#!/bin/sh`necho PUBLISHED`npoweroff -f`n" -SystemDirectories
    $extra = New-TestTar -Entry @(
        @{ Name = 'srv/'; Type = 'Dir'; Mode = '0755' }
        @{ Name = 'srv/a.bin'; Data = (New-RandomBytes 3MB 1) }
        @{ Name = 'srv/b.bin'; Data = (New-RandomBytes 3MB 2) }
        @{ Name = 'srv/c.bin'; Data = (New-RandomBytes 3MB 3) }
    )
    $script:Layout = New-TestOciLayout (Join-Path $Work 'busybox') -Layer @($layer, $extra) -Tag 'v1'

    $script:Registry = Add-Server (Start-TestRegistry)
    $script:Referrers = Add-Server (Start-ReferrersRegistry)
    $script:Image = Push-TestImage -Layout $Layout.Path -Tag v1 -Registry $Registry.Url -Repository 'app'
    $script:Rootfs = Get-OciImage $Image.Reference | Expand-OciLayers
    $script:Zstd = $Rootfs | Export-Initramfs (Join-Path $Work 'app.cpio.zst')
    $script:Gzip = $Rootfs | Export-Initramfs (Join-Path $Work 'app.cpio.gz')
}

AfterAll {
    for ($i = $Servers.Count - 1; $i -ge 0; $i--) { Stop-TestServer $Servers[$i] }
    # An unset variable is removed again, not set to '' (which .NET keeps on Linux).
    foreach ($n in $EnvNames) { if ($null -eq $SavedEnv[$n]) { Remove-Item -LiteralPath "Env:$n" -ErrorAction SilentlyContinue } else { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) } }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Publish-Initramfs to docker-registry (no referrers API)' {
    BeforeAll {
        $script:Report = Publish-Initramfs -Reference "$($Registry.Url)/app:initramfs" -Path $Zstd.Path -SourceImage $Image.Reference -Kernel $Kernel -KernelArgument 'console=ttyS0 panic=-1'
        $script:Pushed = Get-SkopeoManifest "$($Registry.Url)/app:initramfs"
        $script:Copied = Copy-WithSkopeo "$($Registry.Url)/app:initramfs"
    }

    It 'returns the reference, the digest the registry serves, the layers and the bytes sent' {
        $Report.Reference | Should -Be "$($Registry.Url)/app:initramfs"
        $Report.Digest | Should -Be ('sha256:' + [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($Pushed.Raw))).ToLowerInvariant())
        $Report.Layers | Should -Be ($Zstd.PartCount + 1)
        $Report.BytesUploaded + $Report.BytesSkipped | Should -Be $Report.Size
        $Report.Size | Should -Be ($Zstd.CompressedSize + (Get-Item $Kernel).Length + $Pushed.Json.config.size)
        "$Report" | Should -Match ([regex]::Escape("$($Registry.Url)/app:initramfs@sha256:"))
    }

    It 'pushes an OCI 1.1 manifest: artifactType, config, one layer per part then the kernel, annotations, subject' {
        $m = $Pushed.Json
        $m.mediaType | Should -Be 'application/vnd.oci.image.manifest.v1+json'
        $m.artifactType | Should -Be 'application/vnd.initramfsps.initramfs.v1'
        $m.config.mediaType | Should -Be 'application/vnd.initramfsps.initramfs.config.v1+json'
        @($m.layers).Count | Should -Be ($Zstd.PartCount + 1)
        @($m.layers | Select-Object -SkipLast 1).mediaType | Select-Object -Unique | Should -Be 'application/vnd.initramfsps.initramfs.part.v1.cpio+zstd'
        $m.layers[-1].mediaType | Should -Be 'application/vnd.initramfsps.kernel.v1'
        $m.layers[-1].annotations.'org.opencontainers.image.title' | Should -Be (Split-Path $Kernel -Leaf)
        $m.layers[-1].digest | Should -Be (Get-FileSha256 $Kernel)
        $m.annotations.'org.opencontainers.image.base.name' | Should -Be $Image.Reference
        $m.annotations.'org.opencontainers.image.base.digest' | Should -Be $Image.Digest
        [DateTimeOffset]::Parse($m.annotations.'org.opencontainers.image.created').UtcDateTime | Should -BeGreaterThan ([DateTime]::UtcNow.AddMinutes(-10))
        $m.subject.digest | Should -Be $Image.Digest
        $m.subject.size | Should -Be ((Get-SkopeoManifest $Image.Reference).Raw.Length)
        $Report.Subject | Should -Be $Image.Digest
    }

    It 'writes a config that describes the archive: compression, command line, counts, digest, memory, platform, version' {
        $config = Get-Content -Raw -LiteralPath (Join-Path $Copied ($Pushed.Json.config.digest -replace '^sha256:', '')) | ConvertFrom-Json
        $config.compression | Should -Be 'zstd'
        $config.kernelCommandLine | Should -Be 'console=ttyS0 panic=-1'
        $config.archiveSize | Should -Be $Zstd.CompressedSize
        $config.archiveDigest | Should -Be "sha256:$($Zstd.Sha256)"
        $config.uncompressedSize | Should -Be $Zstd.UncompressedSize
        $config.entryCount | Should -Be $Zstd.EntryCount
        $config.minimumMemory | Should -Be $Zstd.MinimumMemory
        $config.os | Should -Be 'linux'
        $config.architecture | Should -Be 'amd64'
        $config.moduleVersion | Should -Be (Import-PowerShellDataFile $ModulePath).ModuleVersion
    }

    It 'lists the artifact in the fallback tag of its subject (sha256-hex), with its artifactType' {
        $index = (Get-SkopeoManifest "$($Registry.Url)/app:$($Image.Digest -replace ':', '-')").Json
        $index.mediaType | Should -Be 'application/vnd.oci.image.index.v1+json'
        $entry = @($index.manifests | Where-Object digest -EQ $Report.Digest)
        $entry.Count | Should -Be 1
        $entry[0].artifactType | Should -Be 'application/vnd.initramfsps.initramfs.v1'
        $entry[0].annotations.'org.opencontainers.image.base.digest' | Should -Be $Image.Digest
        $Report.Referrers | Should -Be ($Image.Digest -replace ':', '-')
    }

    It 'pushes the blobs first, then the manifest, then the fallback index: nothing refers to what is not there' {
        $before = @(Get-TestRegistryRequest $Registry).Count
        $r = Publish-Initramfs -Reference "$($Registry.Url)/app:order" -Path $Gzip.Path -SourceImage $Image.Reference
        $writes = @(Get-TestRegistryRequest $Registry -Since $before | Where-Object { $_.Method -in 'PUT', 'PATCH', 'POST' -and $_.Status -lt 300 })
        $manifests = @(for ($i = 0; $i -lt $writes.Count; $i++) { if ($writes[$i].Path -match '/manifests/(.+)$') { [pscustomobject]@{ At = $i; Ref = $Matches[1] } } })
        $manifests.Ref | Should -Be @('order', ($Image.Digest -replace ':', '-'))
        $lastBlob = @(for ($i = 0; $i -lt $writes.Count; $i++) { if ($writes[$i].Path -match '/blobs/uploads/') { $i } })[-1]
        $lastBlob | Should -BeLessThan $manifests[0].At
        $r.Layers | Should -Be $Gzip.PartCount
    }

    It 'adds a second artifact of the same image to the fallback index and keeps the first' {
        $second = $Rootfs | Publish-Initramfs -Reference "$($Registry.Url)/app:from-rootfs"
        $index = (Get-SkopeoManifest "$($Registry.Url)/app:$($Image.Digest -replace ':', '-')").Json
        @($index.manifests.digest) | Should -Contain $Report.Digest
        @($index.manifests.digest) | Should -Contain $second.Digest
        $second.Subject | Should -Be $Image.Digest
    }

    It 'publishes the archive of an Export-Initramfs report piped to it, and a file piped from Get-ChildItem' {
        $fromReport = $Zstd | Publish-Initramfs "$($Registry.Url)/app:piped-report"
        $fromFile = Get-Item -LiteralPath $Gzip.Path | Publish-Initramfs "$($Registry.Url)/app:piped-file"
        $fromReport.Layers | Should -Be $Zstd.PartCount
        $fromFile.Layers | Should -Be $Gzip.PartCount
        $fromReport.BytesUploaded | Should -BeLessThan 1KB   # the parts are in the repository already: only its config is new
        (Get-SkopeoManifest "$($Registry.Url)/app:piped-file").Json.layers[0].mediaType | Should -Be 'application/vnd.initramfsps.initramfs.part.v1.cpio+gzip'
    }

    It 'is read by skopeo: the part layers joined are the archive byte for byte (<Name>)' -TestCases @(
        @{ Name = 'zstd' }
        @{ Name = 'gzip' }
    ) {
        param($Name)
        $archive = if ($Name -eq 'zstd') { $Zstd } else { $Gzip }
        $r = Publish-Initramfs -Reference "$($Registry.Url)/app:bytes-$Name" -Path $archive.Path -Kernel $Kernel
        $dir = Copy-WithSkopeo "$($Registry.Url)/app:bytes-$Name"
        $manifest = Get-Content -Raw -LiteralPath (Join-Path $dir 'manifest.json') | ConvertFrom-Json
        $manifest.digest | Should -BeNullOrEmpty
        @($manifest.layers).Count | Should -Be ($archive.PartCount + 1)
        $archive.PartCount | Should -BeGreaterThan 1
        $joined = Join-PartLayers $dir $manifest
        $joined.Length | Should -Be (Get-Item $archive.Path).Length
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($joined)) | Should -Be $archive.Sha256.ToUpperInvariant()
        (Get-FileHash -LiteralPath (Join-Path $dir ($manifest.layers[-1].digest -replace '^sha256:', ''))).Hash | Should -Be (Get-FileHash $Kernel).Hash
        $r.Layers | Should -Be ($archive.PartCount + 1)
    }
}

Describe 'Publish, find, save and boot: the round trip a fleet host makes' -Tag Boot {
    # What Publish-Initramfs pushed, found from its image by Find-Initramfs and pulled back by
    # Save-Initramfs: through the fallback tag on docker-registry, through the referrers API on the
    # tests' own registry. The saved archive and kernel are the published bytes, and they boot.
    It 'round-trips through <Name>' -ForEach @(
        @{ Name = 'docker-registry (fallback tag)'; Api = $false }
        @{ Name = 'a registry with the referrers API'; Api = $true }
    ) {
        $url = if ($Api) { $Referrers.Url } else { $Registry.Url }
        $image = Push-TestImage -Layout $Layout.Path -Tag v1 -Registry $url -Repository 'roundtrip'
        $published = Get-OciImage $image.Reference | Expand-OciLayers |
            Publish-Initramfs -Reference "$url/roundtrip:v1-initramfs" -Kernel $Kernel -KernelArgument 'console=ttyS0 panic=-1'
        $published.Subject | Should -Be $image.Digest
        $published.Referrers | Should -Be $(if ($Api) { 'referrers API' } else { $image.Digest -replace ':', '-' })

        $found = @(Find-Initramfs $image.Reference)
        # Digests are one type across the module's objects: they compare as values, and to their text.
        $found.Digest | Should -Contain $published.Digest
        $found.Digest | Should -Contain "$($published.Digest)"
        $published.Digest -eq "$($published.Digest)" | Should -BeTrue
        $out = Join-Path $Work "roundtrip-$Api.cpio.zst"
        $kernelOut = Join-Path $Work "roundtrip-$Api-vmlinuz"
        $saved = $found | Where-Object Digest -EQ $published.Digest | Save-Initramfs -Path $out -KernelPath $kernelOut
        $saved.ManifestDigest | Should -Be $published.Digest
        $saved.KernelCommandLine | Should -Be 'console=ttyS0 panic=-1'
        (Get-FileHash $kernelOut).Hash | Should -Be (Get-FileHash $Kernel).Hash
        $saved.Sha256 | Should -Be (Get-FileHash $out).Hash.ToLowerInvariant()
        # The archive is the one an export of the same image writes, byte for byte.
        $export = Get-OciImage $image.Reference | Expand-OciLayers | Export-Initramfs (Join-Path $Work "roundtrip-$Api-export.cpio.zst")
        $saved.Sha256 | Should -Be $export.Sha256

        $boot = Invoke-QemuBoot $out -Kernel $kernelOut -TimeoutSeconds 120
        $boot.Output | Should -Match 'PUBLISHED' -Because $boot.Output
        $boot.ExitCode | Should -Be 0
    }
}

Describe 'Publish-Initramfs to a registry with the referrers API' {
    BeforeAll {
        $script:RefImage = Push-TestImage -Layout $Layout.Path -Tag v1 -Registry $Referrers.Url -Repository 'app'
        $script:RefRootfs = Get-OciImage $RefImage.Reference | Expand-OciLayers
        $script:RefReport = $RefRootfs | Publish-Initramfs -Reference "$($Referrers.Url)/app:initramfs" -Kernel $Kernel
    }

    It 'is listed by the referrers API of its subject, filtered by artifact type, and no fallback tag is written' {
        $RefReport.Subject | Should -Be $RefImage.Digest
        $RefReport.Referrers | Should -Be 'referrers API'
        $answer = Invoke-WebRequest -Uri "http://$($Referrers.Url)/v2/app/referrers/$($RefImage.Digest)?artifactType=application/vnd.initramfsps.initramfs.v1"
        $answer.Headers['OCI-Filters-Applied'] | Should -Be 'artifactType'
        # an OCI media type is not text to Invoke-WebRequest: the content comes as bytes
        $listed = @(([Text.Encoding]::UTF8.GetString([byte[]]$answer.Content) | ConvertFrom-Json).manifests)
        @($listed).Count | Should -Be 1
        $listed[0].digest | Should -Be $RefReport.Digest
        $listed[0].artifactType | Should -Be 'application/vnd.initramfsps.initramfs.v1'
        $tags = (Invoke-RestMethod -Uri "http://$($Referrers.Url)/v2/app/tags/list").tags
        $tags | Should -Not -Contain ($RefImage.Digest -replace ':', '-')
        $tags | Should -Contain 'initramfs'
    }

    It 'pushes there the same shape of manifest: artifactType, config, parts then the kernel, annotations, subject' {
        $pushed = Get-SkopeoManifest "$($Referrers.Url)/app:initramfs"
        $m = $pushed.Json
        $m.artifactType | Should -Be 'application/vnd.initramfsps.initramfs.v1'
        $m.config.mediaType | Should -Be 'application/vnd.initramfsps.initramfs.config.v1+json'
        $m.layers[-1].mediaType | Should -Be 'application/vnd.initramfsps.kernel.v1'
        @($m.layers).Count | Should -Be $RefReport.Layers
        @($m.layers | Select-Object -SkipLast 1).mediaType | Select-Object -Unique | Should -Be 'application/vnd.initramfsps.initramfs.part.v1.cpio+zstd'
        $m.subject.digest | Should -Be $RefImage.Digest
        $m.annotations.'org.opencontainers.image.base.name' | Should -Be $RefImage.Reference
        $m.annotations.'org.opencontainers.image.base.digest' | Should -Be $RefImage.Digest
        # RFC 3339 in UTC, to the second (ConvertFrom-Json would make it a DateTime: read the raw text)
        $pushed.Raw | Should -Match '"org\.opencontainers\.image\.created":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"'
    }

    It 'names an image of another registry as its base, without a subject and without asking that registry' {
        $log = @(Get-ReferrersRegistryLog $Referrers).Count
        $r = $RefRootfs | Publish-Initramfs -Reference "$($Registry.Url)/elsewhere:1"
        @(Get-ReferrersRegistryLog $Referrers | Select-Object -Skip $log).Count | Should -Be 0
        $r.Subject | Should -BeNullOrEmpty
        $r.Referrers | Should -BeNullOrEmpty
        $m = (Get-SkopeoManifest "$($Registry.Url)/elsewhere:1").Json
        $m.PSObject.Properties.Name | Should -Not -Contain 'subject'
        $m.annotations.'org.opencontainers.image.base.name' | Should -Be $RefImage.Reference
        $m.annotations.'org.opencontainers.image.base.digest' | Should -Be $RefImage.Digest
    }

    It 'takes the created time from SOURCE_DATE_EPOCH, so the same inputs give the same manifest digest' {
        $env:SOURCE_DATE_EPOCH = '1700000000'
        try {
            $a = Publish-Initramfs -Reference "$($Referrers.Url)/epoch:a" -Path $Zstd.Path -Kernel $Kernel
            $b = Publish-Initramfs -Reference "$($Referrers.Url)/epoch:b" -Path $Zstd.Path -Kernel $Kernel
        }
        finally { Remove-Item Env:SOURCE_DATE_EPOCH }
        $b.Digest | Should -Be $a.Digest
        (Get-SkopeoManifest "$($Referrers.Url)/epoch:a").Raw | Should -Match ([regex]::Escape('"org.opencontainers.image.created":"2023-11-14T22:13:20Z"'))
    }

    It 'mounts the parts another repository of the registry has instead of uploading them' {
        $log = @(Get-ReferrersRegistryLog $Referrers).Count
        $r = $RefRootfs | Publish-Initramfs -Reference "$($Referrers.Url)/fleet/app:1" -SourceImage "$($Referrers.Url)/app:initramfs" -WarningVariable warned -WarningAction SilentlyContinue
        # the parts (and the config, the same as the first artifact's) are mounted from app, the source's repository
        $new = @(Get-ReferrersRegistryLog $Referrers | Select-Object -Skip $log)
        @($new | Where-Object { $_.Method -eq 'POST' -and $_.Query -match 'mount=' -and $_.Status -eq 201 }).Count | Should -Be ($r.Layers + 1)
        @($new | Where-Object { $_.Method -in 'PATCH', 'PUT' -and $_.Path -match '/blobs/uploads/' }).Count | Should -Be 0
        $r.BytesUploaded | Should -Be 0
        $r.BytesSkipped | Should -Be $r.Size
        "$warned" | Should -Match 'per repository'
    }

    It 'uploads into the session a refused mount opened, without a second POST' {
        # the gzip archive's parts are in no repository of this registry: each mount is answered 202
        $log = @(Get-ReferrersRegistryLog $Referrers).Count
        $r = Publish-Initramfs -Reference "$($Referrers.Url)/fleet/gzip:1" -Path $Gzip.Path -SourceImage $RefImage.Reference -WarningAction SilentlyContinue
        $new = @(Get-ReferrersRegistryLog $Referrers | Select-Object -Skip $log)
        $posts = @($new | Where-Object Method -EQ 'POST')
        $posts.Count | Should -Be ($r.Layers + 1)
        @($posts | Where-Object { $_.Query -notmatch 'mount=' }).Count | Should -Be 0
        @($posts | Where-Object Status -EQ 202).Count | Should -Be ($r.Layers + 1)
        @($new | Where-Object { $_.Method -eq 'PUT' -and $_.Path -match '/blobs/uploads/' -and $_.Status -eq 201 }).Count | Should -Be ($r.Layers + 1)
        $r.BytesUploaded | Should -Be $r.Size
        $dir = Copy-WithSkopeo "$($Referrers.Url)/fleet/gzip:1"
        $manifest = Get-Content -Raw -LiteralPath (Join-Path $dir 'manifest.json') | ConvertFrom-Json
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData((Join-PartLayers $dir $manifest))) | Should -Be $Gzip.Sha256.ToUpperInvariant()
    }
}

Describe 'Publishing an archive that shares parts with one already pushed' {
    It 'uploads only the new parts (the registry log and BytesSkipped agree)' {
        $first = Publish-Initramfs -Reference "$($Registry.Url)/shared:one" -Path $Zstd.Path
        $agent = Join-Path $Work 'agent.bin'
        [IO.File]::WriteAllBytes($agent, (New-RandomBytes 1MB 42))
        $changed = $Rootfs | Add-InitramfsFile $agent /usr/bin/agent | Export-Initramfs (Join-Path $Work 'changed.cpio.zst')
        $before = @(Get-TestRegistryRequest $Registry).Count
        $second = Publish-Initramfs -Reference "$($Registry.Url)/shared:two" -Path $changed.Path
        $requests = @(Get-TestRegistryRequest $Registry -Since $before)

        $old = @((Get-SkopeoManifest "$($Registry.Url)/shared:one").Json.layers)
        $new = @((Get-SkopeoManifest "$($Registry.Url)/shared:two").Json.layers)
        $kept = @($new | Where-Object { $_.digest -in $old.digest })
        $fresh = @($new | Where-Object { $_.digest -notin $old.digest })
        $kept.Count | Should -BeGreaterThan 0
        $fresh.Count | Should -BeGreaterThan 0
        $fresh.Count | Should -BeLessThan $new.Count
        # each completed upload is a PUT to an upload session answered 201: the new parts and the config
        @($requests | Where-Object { $_.Method -eq 'PUT' -and $_.Path -match '/blobs/uploads/' -and $_.Status -eq 201 }).Count | Should -Be ($fresh.Count + 1)
        @($requests | Where-Object { $_.Method -eq 'HEAD' -and $_.Status -eq 200 }).Count | Should -Be $kept.Count
        $second.BytesSkipped | Should -Be (($kept | Measure-Object size -Sum).Sum)
        $second.BytesUploaded | Should -Be ((($fresh | Measure-Object size -Sum).Sum) + (Get-SkopeoManifest "$($Registry.Url)/shared:two").Json.config.size)
        $first.BytesSkipped | Should -BeGreaterOrEqual 0
    }
}

Describe 'An upload cut mid-way' {
    It 'resumes from the offset the registry holds and the blob arrives whole' {
        # One 40 MiB entry that does not compress: a part of its own, sent in 16 MiB PATCHes.
        $big = Join-Path $Work 'big.bin'
        [IO.File]::WriteAllBytes($big, (New-RandomBytes 40MB 7))
        $archive = $Rootfs | Add-InitramfsFile $big /srv/big.bin | Export-Initramfs (Join-Path $Work 'big.cpio.zst')
        $proxy = Add-Server (Start-FaultProxy -Upstream $Registry.Url -Fault 'cut-upload-2' -Match '/blobs/uploads/')
        $report = Publish-Initramfs -Reference "$($proxy.Url)/big:1" -Path $archive.Path -Verbose 4>&1 | Tee-Object -Variable all | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
        $log = @(Get-FaultProxyLog $proxy)
        $cut = @($log | Where-Object Fault -EQ 'cut-upload')
        $cut.Count | Should -BeGreaterThan 0
        # after the cut: the session's status, then the upload goes on in the same session
        $session = $cut[0].Path
        $after = @($log | Where-Object { $_.Id -gt $cut[0].Id -and $_.Path -eq $session })
        $after[0].Method | Should -Be 'GET'
        $after[0].Status | Should -Be 204
        @($after | Where-Object { $_.Method -eq 'PUT' -and $_.Status -eq 201 }).Count | Should -Be 1
        "$(@($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }))" | Should -Match 'going on from there'
        $dir = Copy-WithSkopeo "$($Registry.Url)/big:1"
        $manifest = Get-Content -Raw -LiteralPath (Join-Path $dir 'manifest.json') | ConvertFrom-Json
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData((Join-PartLayers $dir $manifest))) | Should -Be $archive.Sha256.ToUpperInvariant()
        $report.Digest | Should -Match '^sha256:'
    }
}

Describe 'Refusals and limits' {
    BeforeAll {
        $script:User = 'publisher'
        $script:Password = 'pub-' + [guid]::NewGuid().ToString('N')
        $script:BasicRegistry = Add-Server (Start-TestRegistry -Auth htpasswd -HtpasswdFile (New-Htpasswd -User $User -Password $Password))
        $script:TokenServer = Add-Server (Start-TestTokenServer -Service 'initramfsps-registry' -Issuer 'initramfsps-token-issuer' -Users @{ $User = $Password })
        $script:TokenRegistry = Add-Server (Start-TestRegistry -Auth token -Token $TokenServer)
    }

    It 'refuses wrong credentials with RegistryCredentialsRefused and pushes nothing' {
        $bad = [pscredential]::new($User, (ConvertTo-SecureString 'wrong-password' -AsPlainText -Force))
        $before = @(Get-TestRegistryRequest $BasicRegistry).Count
        $e = Get-ExpectedError { Publish-Initramfs -Reference "$($BasicRegistry.Url)/app:1" -Path $Zstd.Path -Credential $bad }
        $e.FullyQualifiedErrorId | Should -Match '^RegistryCredentialsRefused,'
        @(Get-TestRegistryRequest $BasicRegistry -Since $before | Where-Object { $_.Method -in 'POST', 'PUT', 'PATCH' -and $_.Status -lt 400 }).Count | Should -Be 0
    }

    It 'says PushRefused when the registry lets the user pull but not push' {
        # the token service grants anonymous callers pull only
        $e = Get-ExpectedError { Publish-Initramfs -Reference "$($TokenRegistry.Url)/app:1" -Path $Zstd.Path }
        $e.FullyQualifiedErrorId | Should -Match '^PushRefused,'
        $e.CategoryInfo.Category | Should -Be 'SecurityError'
        $e.Exception.Message | Should -Match 'anonymous'
    }

    It 'pushes with credentials through the token service, asking for pull,push at once' {
        $good = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
        Reset-TokenServerStats $TokenServer
        $r = Publish-Initramfs -Reference "$($TokenRegistry.Url)/app:1" -Path $Zstd.Path -Credential $good
        $r.Layers | Should -Be $Zstd.PartCount
        (Get-TokenServerStats $TokenServer).ByScope.Keys | Should -Contain 'repository:app:pull,push'
    }

    It 'asks the token service once for pull,push on the target and pull on the source repository, and mounts from it' {
        $creds = "${User}:$Password"
        $base = Push-TestImage -Layout $Layout.Path -Tag v1 -Registry $TokenRegistry.Url -Repository 'base' -Credential $creds
        $good = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
        $first = Publish-Initramfs -Reference "$($TokenRegistry.Url)/base:initramfs" -Path $Zstd.Path -Credential $good
        Reset-TokenServerStats $TokenServer
        $before = @(Get-TestRegistryRequest $TokenRegistry).Count
        $r = Publish-Initramfs -Reference "$($TokenRegistry.Url)/fleet:1" -Path $Zstd.Path -SourceImage $base.Reference -Credential $good -WarningAction SilentlyContinue
        $stats = Get-TokenServerStats $TokenServer
        $stats.ByScope.Keys | Should -Contain 'repository:fleet:pull,push'
        $stats.ByScope.Keys | Should -Contain 'repository:base:pull'
        # every part (and the config) came from base by a mount docker-registry answered 201
        @(Get-TestRegistryRequest $TokenRegistry -Since $before | Where-Object { $_.Method -eq 'POST' -and $_.Query -match 'mount=' -and $_.Status -eq 201 }).Count | Should -Be ($r.Layers + 1)
        $r.BytesUploaded | Should -Be 0
        $r.Subject | Should -Be $base.Digest
        $first.BytesUploaded | Should -BeGreaterThan 0
    }

    It 'pushes nothing with -WhatIf' {
        $before = @(Get-TestRegistryRequest $Registry).Count
        $r = Publish-Initramfs -Reference "$($Registry.Url)/whatif:1" -Path $Zstd.Path -Kernel $Kernel -WhatIf
        $r | Should -BeNullOrEmpty
        @(Get-TestRegistryRequest $Registry -Since $before).Count | Should -Be 0
        & skopeo inspect --raw --tls-verify=false "docker://$($Registry.Url)/whatif:1" 2>&1 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'never shows the password or the token, in any stream' {
        $good = [pscredential]::new($User, (ConvertTo-SecureString $Password -AsPlainText -Force))
        $bad = [pscredential]::new($User, (ConvertTo-SecureString "$Password-x" -AsPlainText -Force))
        $text = & {
            Publish-Initramfs -Reference "$($TokenRegistry.Url)/secret:1" -Path $Zstd.Path -Credential $good -Verbose
            Publish-Initramfs -Reference "$($BasicRegistry.Url)/secret:1" -Path $Zstd.Path -Credential $good -Verbose
            Publish-Initramfs -Reference "$($BasicRegistry.Url)/secret:2" -Path $Zstd.Path -Credential $bad -Verbose -ErrorAction Continue
        } *>&1 | Out-String -Width 400
        $text | Should -Match 'PUT'
        $text | Should -Not -Match ([regex]::Escape($Password))
        foreach ($token in (Get-TokenServerStats $TokenServer).Tokens) { $text | Should -Not -Match ([regex]::Escape($token)) }
        $text | Should -Not -Match ([regex]::Escape([Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("${User}:$Password"))))
    }

    It 'bounds a hostile registry: <Hostile> ends in <Id> quickly' -TestCases @(
        @{ Hostile = 'endless-manifest'; Id = 'RegistryResponseTooLarge' }
        @{ Hostile = 'endless-upload-error'; Id = 'PushFailed' }
        @{ Hostile = 'foreign-location'; Id = 'PushFailed' }
    ) {
        param($Hostile, $Id)
        $server = Add-Server (Start-ReferrersRegistry -Hostile $Hostile)
        $clock = [Diagnostics.Stopwatch]::StartNew()
        # with a source image, the endless manifest is the source's, read to find the subject
        $source = if ($Hostile -eq 'endless-manifest') { @{ SourceImage = "$($server.Url)/app:v1" } } else { @{} }
        $e = Get-ExpectedError { Publish-Initramfs -Reference "$($server.Url)/app:1" -Path $Zstd.Path @source }
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 30
        $e.FullyQualifiedErrorId | Should -Match "^$Id,"
        $sent = (Get-ReferrersRegistryLog $server | Measure-Object BytesOut -Sum).Sum
        # what was read of the endless answers stays near the caps (4 MiB for a manifest, 64 KiB for an error)
        if ($Hostile -ne 'foreign-location') { $sent | Should -BeGreaterThan 64KB }
    }

    It 'refuses a reference with a digest, or not of a registry, with PublishReferenceInvalid' {
        $e = Get-ExpectedError { Publish-Initramfs -Reference "$($Registry.Url)/app@$($Image.Digest)" -Path $Zstd.Path }
        $e.FullyQualifiedErrorId | Should -Match '^PublishReferenceInvalid,'
        $e = Get-ExpectedError { Publish-Initramfs -Reference "oci:$Work/layout:x" -Path $Zstd.Path }
        $e.FullyQualifiedErrorId | Should -Match '^PublishReferenceInvalid,'
    }

    It 'refuses a file that is not an archive with ArchiveInvalid, before sending anything' {
        $junk = Join-Path $Work 'junk.cpio.zst'
        [IO.File]::WriteAllBytes($junk, (New-RandomBytes 4096 9))
        $before = @(Get-TestRegistryRequest $Registry).Count
        $e = Get-ExpectedError { Publish-Initramfs -Reference "$($Registry.Url)/junk:1" -Path $junk }
        $e.FullyQualifiedErrorId | Should -Match '^ArchiveInvalid,'
        @(Get-TestRegistryRequest $Registry -Since $before).Count | Should -Be 0
    }
}
