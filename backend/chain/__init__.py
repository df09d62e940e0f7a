"""The chain side of the backend: the local anvil process, web3 connections, contract deployment."""
